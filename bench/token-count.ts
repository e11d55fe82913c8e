/**
 * Token counting time by text shape and size: the bounded count (what the library runs) against
 * gpt-tokenizer's own countTokens (the baseline, quadratic on one long pre-token), in the same
 * run. On the two shapes where it is quadratic (one letter, CJK without punctuation) the baseline
 * is measured only up to 100 KB: at 4 MB it takes hours. Prints figures; asserts nothing. Run: npm run bench:tokens
 */
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { builtinTokenizer } from '../src/tokens/tokenizer.js';
import { machine, markdownTable, ms, table } from './harness/stats.js';
import { studyFlags } from './harness/study.js';

const markdown = studyFlags('bench:tokens', {}).md;
const KB = 1024;

function seeded(length: number, alphabet: string, seed = 7): string {
  let state = seed;
  const out: string[] = new Array(length);
  for (let index = 0; index < length; index++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    out[index] = alphabet[state % alphabet.length]!;
  }
  return out.join('');
}

const SHAPES: [string, (bytes: number) => string][] = [
  ['one letter', (bytes) => 'x'.repeat(bytes)],
  [
    'base64',
    (bytes) =>
      Buffer.from(seeded(Math.ceil((bytes * 3) / 4), 'abcdefghijklmnopqrstuvwxyz0123456789'))
        .toString('base64')
        .slice(0, bytes),
  ],
  ['CJK, no spaces', (bytes) => seeded(Math.ceil(bytes / 3), '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年')],
  ['minified JS', (bytes) => 'function a(b,c){return b.x[c]||(b.y=c*2)}var q=a({},1);'.repeat(Math.ceil(bytes / 56)).slice(0, bytes)],
  ['English prose', (bytes) => 'The quick brown fox jumps over the lazy dog while the server logs a timeout. '.repeat(Math.ceil(bytes / 78)).slice(0, bytes)],
];

const QUADRATIC = new Set(['one letter', 'CJK, no spaces']);

const time = (run: () => number): [number, number] => {
  const started = performance.now();
  const count = run();
  return [performance.now() - started, count];
};

const bounded = await builtinTokenizer('gpt-tokenizer')('o200k_base');
const options = { disallowedSpecial: new Set<string>() };
const rows: string[][] = [['text', 'size', 'bounded ms', 'bounded tokens', 'countTokens ms (baseline)', 'baseline tokens', 'speed-up']];
for (const [name, make] of SHAPES) {
  for (const size of [25 * KB, 100 * KB, 4096 * KB]) {
    const text = make(size);
    process.stderr.write(`${name}, ${size / KB} KB…\n`);
    const [boundedMs, boundedTokens] = time(() => bounded.count(text));
    // The baseline is quadratic only on long runs of one class: one letter, and CJK without punctuation.
    const baselineOk = size <= 100 * KB || !QUADRATIC.has(name);
    const [baselineMs, baselineTokens] = baselineOk ? time(() => countTokens(text, options)) : [Number.NaN, Number.NaN];
    rows.push([
      name,
      `${size / KB} KB`,
      ms(boundedMs),
      String(boundedTokens),
      baselineOk ? ms(baselineMs) : 'not run (hours)',
      baselineOk ? String(baselineTokens) : '–',
      baselineOk ? `${(baselineMs / boundedMs).toFixed(1)}×` : '–',
    ]);
  }
}
console.log(markdown ? markdownTable(rows) : table(rows));
console.log(`\nSecond runs, with gpt-tokenizer's merge cache warm for both, but a baseline over a second is run once. ${machine()}`);

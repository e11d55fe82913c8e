/**
 * Token counting in time linear in the text, for any text.
 *
 * tiktoken encodings first split a text into pre-tokens (a word, a run of punctuation, a run of
 * spaces) and then run BPE over each, and BPE's cost grows with the square of a pre-token's
 * length. Ordinary text has short pre-tokens; a pasted blob with no spaces (`"x".repeat(1e5)`, a
 * long id, base64, CJK without punctuation, minified code's punctuation runs) is one pre-token,
 * and counting it took 24 s per 100k characters.
 *
 * So any run of one character class (letters, whitespace, punctuation) longer than
 * {@link MAX_RUN_CHARS} is cut every {@link MAX_RUN_CHARS} characters, and the pieces are counted
 * apart. Digits need no cut: both encodings split numbers every three digits.
 *
 * - Texts with no such run (nearly all text) are counted whole: the exact count.
 * - A cut run is counted as the sum of its pieces plus one token per cut: an upper bound of the
 *   exact count. (The pieces alone can fall a token short per cut, since BPE merges differently
 *   from a cut; with the extra token the count was never below the exact one in our tests,
 *   test/tokens.test.ts and test/robustness.test.ts.) It is over by about one token per 256
 *   characters of the run: 3% for one letter repeated (8 letters a token), about 1% for random
 *   letters, and nothing for text without such runs.
 */

/** The longest run of one character class counted whole. */
export const MAX_RUN_CHARS = 256;

const LETTER = 1;
const SPACE = 2;
const PUNCT = 3;
const DIGIT = 4;

// Class of each UTF-16 code unit, computed once per unit on first sight (0 = not yet known).
const classes = new Uint8Array(65536);
const IS_SPACE = /\s/u;
const IS_LETTER = /[\p{L}\p{M}]/u;
const IS_DIGIT = /\p{N}/u;

function classOf(code: number): number {
  const known = classes[code]!;
  if (known !== 0) return known;
  let kind: number;
  // Surrogates (astral letters, emoji): one class, so a cut never splits a pair's halves apart
  // from a run of them; cuts are moved off a pair's middle anyway.
  if (code >= 0xd800 && code <= 0xdfff) kind = LETTER;
  else {
    const char = String.fromCharCode(code);
    kind = IS_SPACE.test(char) ? SPACE : IS_LETTER.test(char) ? LETTER : IS_DIGIT.test(char) ? DIGIT : PUNCT;
  }
  classes[code] = kind;
  return kind;
}

/**
 * The places where a text is cut before counting: inside each run of one class longer than
 * `limit`, every `limit` characters from the run's start (never between a surrogate pair's
 * halves). Empty for ordinary text. The places depend only on the run, so a slice of the text
 * that starts at one of them is cut at the same places as the whole.
 */
export function runCuts(text: string, limit = MAX_RUN_CHARS): number[] {
  const cuts: number[] = [];
  if (text.length <= limit) return cuts;
  let runClass = -1;
  let next = 0;
  for (let at = 0; at < text.length; at++) {
    const kind = classOf(text.charCodeAt(at));
    if (kind !== runClass || kind === DIGIT) {
      runClass = kind;
      next = at + limit;
      continue;
    }
    if (at === next) {
      const code = text.charCodeAt(at);
      // Keep a surrogate pair whole: cut one unit later.
      if (code >= 0xdc00 && code <= 0xdfff) {
        next = at + 1;
        continue;
      }
      cuts.push(at);
      next = at + limit;
    }
  }
  return cuts;
}

/**
 * A quick screen: whether the text has `limit` + 1 characters in a row that are neither ASCII
 * whitespace nor digits, or as many whitespace characters. Most text has neither, and then there
 * is nothing to cut; otherwise `runCuts` decides. One pass over char codes, no lookups.
 */
function mayHaveLongRun(text: string, limit: number): boolean {
  let other = 0;
  let space = 0;
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code === 32 || (code >= 9 && code <= 13)) {
      other = 0;
      if (++space > limit) return true;
    } else if (code >= 48 && code <= 57) {
      other = 0;
      space = 0;
    } else {
      space = 0;
      if (++other > limit) return true;
    }
  }
  return false;
}

/** Count `text` with `count`, cutting over-long runs first (see the module's comment). */
export function boundedCount(count: (text: string) => number, text: string): number {
  if (text.length <= MAX_RUN_CHARS || !mayHaveLongRun(text, MAX_RUN_CHARS)) return count(text);
  const cuts = runCuts(text);
  if (cuts.length === 0) return count(text);
  let total = 0;
  let start = 0;
  for (const cut of cuts) {
    total += count(text.slice(start, cut));
    start = cut;
  }
  return total + count(text.slice(start)) + cuts.length;
}

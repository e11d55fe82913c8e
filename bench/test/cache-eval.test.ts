import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { pairFeatures } from '../../src/cache/features.js';
import { profile } from '../../src/cache/features.js';
import { FEATURE_NAMES } from '../../src/cache/features.js';
import { scoreProbes } from '../cache-eval/evaluate.js';
import { readPairs, splitByQuestion } from '../cache-eval/pairs.js';
import { benchRoot } from '../paths.js';

const shippedDataPath = (relative: string) => join(benchRoot(), 'data', relative);

const bin = new URL('../../bin/context-compactor.js', import.meta.url).pathname;
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('cache-eval', () => {
  const qqp = readPairs(shippedDataPath('cache-pairs/qqp_pairs.jsonl'));

  test('prints the documented JSON object, and an array with --sweep', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cache-eval-'));
    const file = join(dir, 'pairs.jsonl');
    writeFileSync(
      file,
      qqp
        .slice(0, 400)
        .map((pair) => JSON.stringify(pair))
        .join('\n'),
    );
    const single = run(['cache-eval', '--pairs', file, '--embedder', 'hash', '--verifier', 'cosine', '--threshold', '0.9', '--json', '--no-progress']);
    expect(single.status, single.stderr).toBe(0);
    const result = JSON.parse(single.stdout);
    expect(Object.keys(result).sort()).toEqual(['falseHitRate', 'pairs', 'precision', 'retrievalAccuracy', 'threshold', 'trueHitRate']);
    expect(result.pairs).toBe(400);
    expect(result.threshold).toBe(0.9);
    expect(Object.keys(result.falseHitRate).sort()).toEqual(['hard_miss', 'miss']);
    expect(result.falseHitRate.miss).toBeNull();
    expect(result.retrievalAccuracy).toBeGreaterThan(0.3);
    const sweep = run(['cache-eval', '--pairs', file, '--embedder', 'hash', '--verifier', 'cosine', '--sweep', '--json', '--no-progress']);
    const rows = JSON.parse(sweep.stdout) as { threshold: number; trueHitRate: number }[];
    expect(rows.length).toBeGreaterThan(5);
    // Raising the threshold never adds hits.
    for (let index = 1; index < rows.length; index++) expect(rows[index]!.trueHitRate).toBeLessThanOrEqual(rows[index - 1]!.trueHitRate);
  });

  test('identical questions are all true hits; unrelated ones never hit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cache-eval-'));
    const file = join(dir, 'pairs.jsonl');
    const lines = qqp.slice(0, 50).flatMap((pair, index) => [
      { a: pair.a, b: pair.a, label: 'hit' },
      { a: pair.a, b: qqp[(index + 500) % qqp.length]!.b, label: 'miss' },
    ]);
    writeFileSync(file, lines.map((line) => JSON.stringify(line)).join('\n'));
    const out = run(['cache-eval', '--pairs', file, '--embedder', 'hash', '--json', '--no-progress']);
    expect(out.status, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout);
    expect(result.trueHitRate).toBe(1);
    expect(result.falseHitRate.miss).toBeLessThanOrEqual(0.02);
  });

  test('bad pair files are rejected with a code and the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cache-eval-'));
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"a":"x","b":"y","label":"hit"}\n{"a":"x","label":"maybe"}\n');
    const out = run(['cache-eval', '--pairs', file, '--embedder', 'hash', '--json']);
    expect(out.status).toBe(2);
    expect(out.stderr).toContain('input.invalid');
    expect(out.stderr).toContain(':2:');
  });

  test('rates are computed from probes as documented', () => {
    const probes = [
      { label: 'hit' as const, found: true, correct: true, score: 0.9 },
      { label: 'hit' as const, found: true, correct: false, score: 0.95 },
      { label: 'hit' as const, found: true, correct: true, score: 0.5 },
      { label: 'hard_miss' as const, found: true, correct: false, score: 0.99 },
      { label: 'hard_miss' as const, found: false, correct: false, score: Number.NEGATIVE_INFINITY },
      // A hard_miss query that is itself a cached question, answered with its own answer.
      { label: 'hard_miss' as const, found: true, correct: true, score: 1 },
    ];
    expect(scoreProbes(probes, 0.8)).toEqual({
      threshold: 0.8,
      pairs: 6,
      trueHitRate: 0.3333,
      falseHitRate: { hard_miss: 0.3333, miss: null },
      precision: 0.3333,
      retrievalAccuracy: 0.6667,
    });
  });

  test('the split by question puts no question on both sides', () => {
    const { train, test: held } = splitByQuestion(qqp);
    const trainTexts = new Set(train.flatMap((pair) => [pair.a, pair.b]));
    expect(held.some((pair) => trainTexts.has(pair.a) || trainTexts.has(pair.b))).toBe(false);
    expect(held.length / qqp.length).toBeGreaterThan(0.2);
    expect(held.length / qqp.length).toBeLessThan(0.4);
  });
});

describe('verifier features', () => {
  const feature = (a: string, b: string, name: (typeof FEATURE_NAMES)[number]) => pairFeatures(profile(a), profile(b), 0.9)[FEATURE_NAMES.indexOf(name)];

  test('catch what cosine misses: swapped roles, numbers, names, negation, qualifiers', () => {
    expect(feature('Are cats afraid of tigers?', 'Are tigers afraid of cats?', 'order_inversion')).toBe(1);
    expect(feature('How can I learn Urdu quickly?', 'How do I learn Urdu quickly?', 'order_inversion')).toBe(0);
    expect(feature('Should I upgrade to the iPhone 7?', 'Should I upgrade to the iPhone 6?', 'number_mismatch')).toBe(1);
    expect(feature('Is 1,000 enough?', 'Is 1000 enough?', 'number_mismatch')).toBe(0);
    expect(feature('What are good books in French?', 'What are good books in Tamil?', 'name_mismatch')).toBe(1);
    expect(feature('Is coffee bad for you?', 'Is coffee not bad for you?', 'negation_mismatch')).toBe(1);
    expect(feature('What makes a person more attractive?', 'What makes a person less attractive?', 'qualifier_mismatch')).toBe(2);
    expect(feature('Why is the sky blue?', 'How is the sky blue?', 'question_word_mismatch')).toBe(1);
  });
});

describe('cache-eval: spelling variants', () => {
  test('every case, whitespace, trailing-punctuation and NFKC variant of a cached QQP test question hits with its own answer', async () => {
    const { createResponseCache } = await import('../../src/cache/response-cache.js');
    const { hashEmbedder } = await import('../../src/testing/index.js');
    const { probePairs, spellingVariants, variantHits } = await import('../cache-eval/evaluate.js');
    expect(spellingVariants('How do I reset my password?')).toEqual(
      expect.arrayContaining(['how do i reset my password?', 'HOW DO I RESET MY PASSWORD?', 'How do I reset my password', 'Ｈow do I reset my password？']),
    );
    const pairs = splitByQuestion(readPairs(shippedDataPath('cache-pairs/qqp_pairs.jsonl'))).test.slice(0, 1500);
    // The shipped verifier and threshold; the hash embedder keeps the test fast (variants are the exact layer's job).
    const cache = createResponseCache({ embedder: hashEmbedder(64), minCosine: -1 });
    await probePairs(cache, pairs);
    const { hits, total } = await variantHits(cache, pairs);
    expect(total).toBeGreaterThan(4000);
    expect(hits).toBe(total);
  });
});

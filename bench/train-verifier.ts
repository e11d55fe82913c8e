/**
 * Trains the semantic cache's default verifier and writes src/cache/verifier-weights.ts.
 *
 *   npm run build && node dist/bench/train-verifier.js [--write]
 *
 * Data: bench/data/cache-pairs/{qqp,stsb}_pairs.jsonl, each split by question (70% train, 30%
 * test; no question on both sides), the train side split again (75% fit, 25% calibrate). The model
 * is a logistic regression over the pair features of src/cache/features.ts, fitted on `fit`; the
 * threshold is calibrated on `calibrate` in retrieval mode (as cache-eval runs) so that hard
 * negatives hit at most 1% with 95% confidence; everything is reported on `test`, which played no
 * part in either choice.
 */
import { writeFileSync } from 'node:fs';
import { dot } from '../src/embedders/types.js';
import { useLite } from '../src/embedders/use-lite.js';
import { FEATURE_COUNT, FEATURE_NAMES, pairFeatures, profileMemo } from '../src/cache/features.js';
import { readPairs, splitByQuestion, type LabelledPair } from './cache-eval/pairs.js';
import { probePairs, scoreProbes, type CacheProbe } from './cache-eval/evaluate.js';
import { createResponseCache } from '../src/cache/response-cache.js';
import type { Verifier } from '../src/cache/verifier.js';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import type { Embedder } from '../src/embedders/types.js';
import { memoryStore } from '../src/stores/memory.js';
import { pairVectors } from './pair-vectors.js';
import { runStudy, studyFlags } from './harness/study.js';

const MAX_FALSE_HITS = 0.01;
const write = studyFlags('train-verifier', { write: { type: 'boolean' } }).write;

interface Sample {
  pair: LabelledPair;
  source: 'qqp' | 'stsb';
  cosine: number;
  features: Float64Array;
  label: number;
}

function standardise(samples: readonly Sample[]): { mean: number[]; scale: number[] } {
  const mean = new Array<number>(FEATURE_COUNT).fill(0);
  const scale = new Array<number>(FEATURE_COUNT).fill(0);
  for (const sample of samples) for (let index = 1; index < FEATURE_COUNT; index++) mean[index]! += sample.features[index]! / samples.length;
  for (const sample of samples)
    for (let index = 1; index < FEATURE_COUNT; index++) scale[index]! += (sample.features[index]! - mean[index]!) ** 2 / samples.length;
  for (let index = 1; index < FEATURE_COUNT; index++) scale[index] = Math.sqrt(scale[index]!) || 1;
  return { mean, scale };
}

/** Logistic regression, full-batch Adam with a little L2; `mask` limits the features used. */
function train(samples: readonly Sample[], mask: readonly boolean[], l2 = 1e-3, steps = 1500): { mean: number[]; scale: number[]; weights: number[] } {
  const { mean, scale } = standardise(samples);
  const x = samples.map((sample) =>
    Array.from({ length: FEATURE_COUNT }, (_, index) => (index === 0 ? 1 : mask[index] ? (sample.features[index]! - mean[index]!) / scale[index]! : 0)),
  );
  const weights = new Array<number>(FEATURE_COUNT).fill(0);
  const m = new Array<number>(FEATURE_COUNT).fill(0);
  const v = new Array<number>(FEATURE_COUNT).fill(0);
  const rate = 0.05;
  for (let step = 1; step <= steps; step++) {
    const gradient = new Array<number>(FEATURE_COUNT).fill(0);
    samples.forEach((sample, row) => {
      let sum = 0;
      for (let index = 0; index < FEATURE_COUNT; index++) sum += weights[index]! * x[row]![index]!;
      const error = 1 / (1 + Math.exp(-sum)) - sample.label;
      for (let index = 0; index < FEATURE_COUNT; index++) gradient[index]! += (error * x[row]![index]!) / samples.length;
    });
    for (let index = 0; index < FEATURE_COUNT; index++) {
      const g = gradient[index]! + (index === 0 ? 0 : l2 * weights[index]!);
      m[index] = 0.9 * m[index]! + 0.1 * g;
      v[index] = 0.999 * v[index]! + 0.001 * g * g;
      const mHat = m[index]! / (1 - 0.9 ** step);
      const vHat = v[index]! / (1 - 0.999 ** step);
      weights[index]! -= (rate * mHat) / (Math.sqrt(vHat) + 1e-8);
    }
  }
  // Unused features get weight 0 and an identity transform, so the shipped model is self-describing.
  for (let index = 1; index < FEATURE_COUNT; index++) if (!mask[index]) weights[index] = 0;
  return { mean, scale, weights };
}

function predict(model: { mean: number[]; scale: number[]; weights: number[] }, features: Float64Array): number {
  let sum = model.weights[0]!;
  for (let index = 1; index < FEATURE_COUNT; index++) sum += (model.weights[index]! * (features[index]! - model.mean[index]!)) / model.scale[index]!;
  return 1 / (1 + Math.exp(-sum));
}

/** Upper end of the 95% Wilson interval of k successes in n. */
function wilsonUpper(k: number, n: number): number {
  const z = 1.645;
  const p = k / n;
  return (p + (z * z) / (2 * n) + z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
}

/** A verifier from a scoring function over the pair features (for the comparison rows). */
function verifierOf(id: string, score: (features: Float64Array, cosine: number) => number): Verifier {
  const profileOf = profileMemo(1 << 20);
  return { id, score: (query, candidate, cosine) => score(pairFeatures(profileOf(query), profileOf(candidate), cosine), cosine) };
}

/** Retrieval mode, as `cache-eval` runs it: every a cached, every b looked up among all of them. */
async function retrieval(verifier: Verifier, pairs: readonly LabelledPair[], vectors: Map<string, Float32Array>): Promise<CacheProbe[]> {
  const normalized = new Map([...vectors].map(([text, vector]) => [text.normalize('NFC').trim(), vector]));
  const embedder: Embedder = {
    id: 'use-lite@energetic-ai-0.2',
    dimensions: 512,
    embed: async (texts) => texts.map((text) => normalized.get(text.normalize('NFC').trim())!),
  };
  const cache = createResponseCache({
    store: memoryStore({ maxBytes: 2 ** 30 }),
    embedder,
    verifier,
    threshold: 0,
    minCosine: -1,
    ttlMs: 0,
    embeddings: createEmbeddingCache({ maxBytes: 2 ** 30 }),
  });
  return probePairs(cache, pairs);
}

/**
 * Smallest threshold at which the false-hit rate on each source's hard negatives is at most
 * `limit` with 95% confidence (one-sided Wilson bound).
 */
function calibrate(probes: Record<string, CacheProbe[]>, limit: number): number {
  let threshold = -Infinity;
  for (const list of Object.values(probes)) {
    const negatives = list
      .filter((probe) => probe.label === 'hard_miss' && probe.found && !probe.correct)
      .map((probe) => probe.score)
      .sort((a, b) => b - a);
    const total = list.filter((probe) => probe.label === 'hard_miss').length;
    let allowed = 0;
    while (allowed < negatives.length && wilsonUpper(allowed + 1, total) <= limit) allowed++;
    const cut = negatives[allowed] ?? -Infinity;
    threshold = Math.max(threshold, cut + 1e-6);
  }
  return threshold;
}

async function main(): Promise<void> {
  const sources = { qqp: readPairs('bench/data/cache-pairs/qqp_pairs.jsonl'), stsb: readPairs('bench/data/cache-pairs/stsb_pairs.jsonl') };
  const embedder = useLite();
  const texts = Object.values(sources).flatMap((pairs) => pairs.flatMap((pair) => [pair.a, pair.b]));
  const vectors = await pairVectors(embedder, texts, undefined, (done, total) => process.stderr.write(`\rembedding ${done}/${total}`));
  process.stderr.write('\n');
  const profileOf = profileMemo(1 << 20);
  const toSample =
    (source: 'qqp' | 'stsb') =>
    (pair: LabelledPair): Sample => {
      const cosine = dot(vectors.get(pair.a)!, vectors.get(pair.b)!);
      return { pair, source, cosine, features: pairFeatures(profileOf(pair.b), profileOf(pair.a), cosine), label: pair.label === 'hit' ? 1 : 0 };
    };
  // test: 30% of questions, never seen; of the rest, 25% calibrate the threshold, 75% fit the model.
  const fitSet: Sample[] = [];
  const calibration: Record<string, LabelledPair[]> = {};
  const test: Record<string, LabelledPair[]> = {};
  for (const source of ['qqp', 'stsb'] as const) {
    const { train, test: held } = splitByQuestion(sources[source]);
    const { train: fit, test: calibrate } = splitByQuestion(train, 0.25, 'calibration');
    fitSet.push(...fit.map(toSample(source)));
    calibration[source] = calibrate;
    test[source] = held;
  }
  console.log(
    `fit ${fitSet.length} pairs; calibrate ${calibration.qqp!.length + calibration.stsb!.length}; test ${test.qqp!.length + test.stsb!.length} (split by question)`,
  );

  const all = FEATURE_NAMES.map(() => true);
  const lexical = FEATURE_NAMES.map((name) => ['bias', 'cosine', 'cosine_above_0.9', 'word_jaccard', 'content_jaccard'].includes(name));
  const shipped = train(fitSet, all);
  const lexicalModel = train(fitSet, lexical);
  const numberIndex = FEATURE_NAMES.indexOf('number_mismatch');
  const nameIndex = FEATURE_NAMES.indexOf('name_mismatch');
  const variants: { name: string; verifier: Verifier }[] = [
    { name: 'cosine alone', verifier: verifierOf('cosine', (_features, cosine) => cosine) },
    {
      name: 'cosine + exact-entity rule (numbers and names must match)',
      verifier: verifierOf('entity-rule', (features, cosine) => (features[numberIndex]! > 0 || features[nameIndex]! > 0 ? -1 : cosine)),
    },
    { name: 'logistic: cosine + lexical overlap', verifier: verifierOf('lexical', (features) => predict(lexicalModel, features)) },
    { name: 'logistic: all features (shipped)', verifier: verifierOf('shipped', (features) => predict(shipped, features)) },
  ];
  const percent = (value: number | null) => (value === null ? '–' : `${(100 * value).toFixed(1)}%`);
  const rows: string[] = [];
  for (const variant of variants) {
    const calibrated = calibrate(
      { qqp: await retrieval(variant.verifier, calibration.qqp!, vectors), stsb: await retrieval(variant.verifier, calibration.stsb!, vectors) },
      MAX_FALSE_HITS,
    );
    const qqp = scoreProbes(await retrieval(variant.verifier, test.qqp!, vectors), calibrated);
    const stsb = scoreProbes(await retrieval(variant.verifier, test.stsb!, vectors), calibrated);
    rows.push(
      `| ${variant.name} | ${calibrated.toFixed(3)} | ${percent(qqp.trueHitRate)} | ${percent(qqp.falseHitRate.hard_miss)} | ${percent(qqp.precision)} | ${percent(stsb.trueHitRate)} | ${percent(stsb.falseHitRate.hard_miss)} | ${percent(stsb.falseHitRate.miss)} |`,
    );
    process.stderr.write(`${variant.name}: done\n`);
    if (variant.name.includes('shipped') && write) {
      const file = `// Generated by bench/train-verifier.ts (npm run build && node dist/bench/train-verifier.js --write).
// Logistic regression over src/cache/features.ts, fitted on 75% of the training split (by question)
// of bench/data/cache-pairs; threshold calibrated on the other 25% in retrieval mode (every question
// cached, each query looked up among all): hard-negative hits <= ${MAX_FALSE_HITS * 100}% at 95% confidence.
export const VERIFIER_MODEL = {
  version: 2,
  features: ${JSON.stringify(FEATURE_NAMES)},
  mean: ${JSON.stringify(shipped.mean.map((value) => Number(value.toPrecision(6))))},
  scale: ${JSON.stringify(shipped.scale.map((value) => Number(value.toPrecision(6))))},
  weights: ${JSON.stringify(shipped.weights.map((value) => Number(value.toPrecision(6))))},
  threshold: ${Number(calibrated.toPrecision(6))},
} as const;
`;
      writeFileSync('src/cache/verifier-weights.ts', file);
      console.log('wrote src/cache/verifier-weights.ts');
      console.log(FEATURE_NAMES.map((name, index) => `${name}=${shipped.weights[index]!.toFixed(3)}`).join(' '));
    }
  }
  console.log(
    '\nRetrieval mode on the test split (every a cached, each b looked up among all of them); threshold calibrated on the calibration split at <= 1% hard-negative hits (95% confidence).\n',
  );
  console.log('| verifier | threshold | QQP true hits | QQP hard_miss hits | QQP precision | STS-B true hits | STS-B hard_miss hits | STS-B miss hits |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

runStudy('train-verifier', main);

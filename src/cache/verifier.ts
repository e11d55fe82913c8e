import { FEATURE_COUNT, FEATURE_NAMES, pairFeatures, profileMemo } from './features.js';
import { VERIFIER_MODEL } from './verifier-weights.js';

/**
 * Decides whether a cached question answers the query. `score` is in [0, 1]; the cache hits when
 * it reaches the threshold.
 */
export interface Verifier {
  /** Part of every semantic namespace: entries scored by another verifier are never mixed in. */
  readonly id: string;
  score(query: string, candidate: string, cosine: number): number;
}

export interface LogisticModel {
  features: readonly string[];
  mean: readonly number[];
  scale: readonly number[];
  weights: readonly number[];
}

function sigmoid(value: number): number {
  return 1 / (1 + Math.exp(-value));
}

/** Logistic regression over standardised pair features. */
export function logisticVerifier(model: LogisticModel, id = 'logistic'): Verifier {
  if (model.features.length !== FEATURE_COUNT || model.features.some((name, index) => name !== FEATURE_NAMES[index])) {
    throw new Error(`verifier model features do not match this version (${FEATURE_NAMES.join(', ')})`);
  }
  const profileOf = profileMemo();
  return {
    id,
    score(query, candidate, cosine) {
      const features = pairFeatures(profileOf(query), profileOf(candidate), cosine);
      let sum = 0;
      for (let index = 0; index < FEATURE_COUNT; index++) {
        const scaled = model.scale[index] === 0 ? features[index]! : (features[index]! - model.mean[index]!) / model.scale[index]!;
        sum += model.weights[index]! * scaled;
      }
      return sigmoid(sum);
    },
  };
}

/** Cosine alone, as GPTCache and most peers do (for comparison: see bench/notes/HISTORY.md). */
export function cosineVerifier(): Verifier {
  return { id: 'cosine', score: (_query, _candidate, cosine) => cosine };
}

let shipped: Verifier | undefined;

/**
 * The shipped verifier: logistic regression over cosine, lexical overlap, mismatched numbers,
 * names, negations and question words, and length ratio, trained on the training split of the
 * QQP and STS-B pairs by `bench/train-verifier.ts`.
 */
export function defaultVerifier(): Verifier {
  shipped ??= logisticVerifier(VERIFIER_MODEL, `logistic@${VERIFIER_MODEL.version}`);
  return shipped;
}

export const DEFAULT_VERIFIER_THRESHOLD = VERIFIER_MODEL.threshold;

import type { TextProfile } from './profile.js';

export { profile, profileMemo, reversed, type Relation, type TextProfile } from './profile.js';

/**
 * Signals that separate "same question, other words" from "related question, other answer",
 * beyond embedding cosine (which scores topical neighbours almost as high as paraphrases).
 * Everything here is cheap string work: about 20 µs a pair.
 */
export const FEATURE_NAMES = [
  'bias',
  'cosine',
  'cosine_above_0.9',
  'word_jaccard',
  'content_jaccard',
  'content_missing_min',
  'content_missing_max',
  'unmatched_content_log',
  'bigram_jaccard',
  'trigram_char_jaccard',
  'number_mismatch',
  'name_mismatch',
  'negation_mismatch',
  'question_word_mismatch',
  'length_ratio',
  'order_inversion',
  'qualifier_mismatch',
] as const;

export const FEATURE_COUNT = FEATURE_NAMES.length;

function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let shared = 0;
  for (const item of a) if (b.has(item)) shared++;
  return shared / (a.size + b.size - shared);
}

function missing(from: ReadonlySet<string>, other: ReadonlySet<string>): number {
  if (from.size === 0) return 0;
  let count = 0;
  for (const item of from) if (!other.has(item)) count++;
  return count / from.size;
}

function setsDiffer(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 0;
  if (a.size !== b.size) return 1;
  for (const item of a) if (!b.has(item)) return 1;
  return 0;
}

/**
 * Share of discordant pairs among the content words both texts share (Kendall distance):
 * "cats afraid of tigers" against "tigers afraid of cats" is 1, a reworded paraphrase near 0.
 */
function inversions(a: TextProfile, b: TextProfile): number {
  const shared: [number, number][] = [];
  for (const [word, position] of a.order) {
    const other = b.order.get(word);
    if (other !== undefined) shared.push([position, other]);
  }
  if (shared.length < 2) return 0;
  let discordant = 0;
  let total = 0;
  for (let i = 0; i < shared.length; i++) {
    for (let j = i + 1; j < shared.length; j++) {
      total++;
      if ((shared[i]![0] - shared[j]![0]) * (shared[i]![1] - shared[j]![1]) < 0) discordant++;
    }
  }
  return discordant / total;
}

/** Feature vector of a (query, cached question) pair, in FEATURE_NAMES order. */
export function pairFeatures(a: TextProfile, b: TextProfile, cosine: number): Float64Array {
  const features = new Float64Array(FEATURE_COUNT);
  const missingA = missing(a.content, b.content);
  const missingB = missing(b.content, a.content);
  let unmatched = 0;
  for (const item of a.content) if (!b.content.has(item)) unmatched++;
  for (const item of b.content) if (!a.content.has(item)) unmatched++;
  const wordsA = new Set(a.words);
  const wordsB = new Set(b.words);
  const lengthA = Math.max(1, a.words.length);
  const lengthB = Math.max(1, b.words.length);
  features[0] = 1;
  features[1] = cosine;
  features[2] = Math.max(0, cosine - 0.9) * 10;
  features[3] = jaccard(wordsA, wordsB);
  features[4] = jaccard(a.content, b.content);
  features[5] = Math.min(missingA, missingB);
  features[6] = Math.max(missingA, missingB);
  features[7] = Math.log1p(unmatched);
  features[8] = jaccard(a.bigrams, b.bigrams);
  features[9] = jaccard(a.trigrams, b.trigrams);
  features[10] = setsDiffer(a.numbers, b.numbers);
  features[11] = a.names.size + b.names.size === 0 ? 0 : 1 - jaccard(a.names, b.names);
  features[12] = a.negations > 0 !== b.negations > 0 ? 1 : 0;
  features[13] = a.questionWord && b.questionWord && a.questionWord !== b.questionWord ? 1 : 0;
  features[14] = Math.min(lengthA, lengthB) / Math.max(lengthA, lengthB);
  features[15] = inversions(a, b);
  let qualifierDiff = 0;
  for (const word of a.qualifiers) if (!b.qualifiers.has(word)) qualifierDiff++;
  for (const word of b.qualifiers) if (!a.qualifiers.has(word)) qualifierDiff++;
  features[16] = Math.min(qualifierDiff, 3);
  return features;
}

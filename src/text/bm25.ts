import { LRUCache } from 'lru-cache';
import { CHAT_FILLERS, STOPWORDS } from './stopwords.js';

/** Light stemming: enough to match "paintings" with "painting" and "went" stays "went". */
function stem(word: string): string {
  let stemmed = word;
  if (stemmed.length > 4 && stemmed.endsWith('ies')) stemmed = `${stemmed.slice(0, -3)}y`;
  else if (stemmed.length > 5 && stemmed.endsWith('ing')) stemmed = stemmed.slice(0, -3);
  else if (stemmed.length > 4 && stemmed.endsWith('ed')) stemmed = stemmed.slice(0, -2);
  else if (stemmed.length > 3 && stemmed.endsWith('s') && !stemmed.endsWith('ss')) stemmed = stemmed.slice(0, -1);
  // "name"/"named" and "make"/"making" meet at "nam" and "mak".
  if (stemmed.length > 3 && stemmed.endsWith('e')) stemmed = stemmed.slice(0, -1);
  return stemmed;
}

const termsMemo = new LRUCache<string, readonly string[]>({ maxSize: 16 * 1024 * 1024, sizeCalculation: (value, key) => key.length * 2 + value.length * 16 + 64 });

/** Lower-cased, stop-worded, lightly stemmed terms; memoized by text. */
export function terms(text: string): readonly string[] {
  const cached = termsMemo.get(text);
  if (cached) return cached;
  const words = (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => !STOPWORDS.has(word) && !CHAT_FILLERS.has(word)).map(stem);
  termsMemo.set(text, words);
  return words;
}

export interface Bm25Options {
  /** @default 1.2 */
  k1?: number;
  /** @default 0.75 */
  b?: number;
}

/**
 * Okapi BM25 scores of `documents` for a query, with IDF from the documents themselves (the
 * history at hand). Returns one score per document.
 */
export function bm25Scores(query: string, documents: readonly string[], options: Bm25Options = {}): Float64Array {
  return bm25OfTerms(terms(query), documents.map(terms), undefined, options);
}

/**
 * BM25 over term lists (see `terms`). With `previous`, each document also scores as the pair
 * (document + its previous document's terms), with its own IDF over the pairs, and the two scores
 * are added: a reply is found through the message it answers.
 */
export function bm25OfTerms(
  queryTerms: readonly string[],
  documents: readonly (readonly string[])[],
  previous?: readonly (readonly string[] | undefined)[],
  options: Bm25Options = {},
): Float64Array {
  const k1 = options.k1 ?? 1.2;
  const b = options.b ?? 0.75;
  const count = documents.length;
  const scores = new Float64Array(count);
  const unique = [...new Set(queryTerms)];
  const width = unique.length;
  if (width === 0 || count === 0) return scores;
  const slot = new Map(unique.map((term, index) => [term, index]));
  // Counts of each query term per document (and per previous document): flat typed arrays.
  const counts = new Uint32Array(count * width);
  const lengths = new Float64Array(count);
  const countInto = (words: readonly string[], target: Uint32Array, offset: number): void => {
    for (const word of words) {
      const index = slot.get(word);
      if (index !== undefined) target[offset + index]!++;
    }
  };
  for (let document = 0; document < count; document++) {
    const words = documents[document]!;
    lengths[document] = words.length;
    countInto(words, counts, document * width);
  }
  addScores(scores, counts, lengths, count, width, k1, b);
  if (previous) {
    const pairCounts = new Uint32Array(counts);
    const pairLengths = new Float64Array(lengths);
    for (let document = 0; document < count; document++) {
      const words = previous[document];
      if (!words) continue;
      pairLengths[document]! += words.length;
      countInto(words, pairCounts, document * width);
    }
    addScores(scores, pairCounts, pairLengths, count, width, k1, b);
  }
  return scores;
}

function addScores(scores: Float64Array, counts: Uint32Array, lengths: Float64Array, count: number, width: number, k1: number, b: number): void {
  let totalLength = 0;
  for (let document = 0; document < count; document++) totalLength += lengths[document]!;
  const averageLength = totalLength / count || 1;
  const idf = new Float64Array(width);
  for (let term = 0; term < width; term++) {
    let df = 0;
    for (let document = 0; document < count; document++) if (counts[document * width + term]! > 0) df++;
    idf[term] = Math.log(1 + (count - df + 0.5) / (df + 0.5));
  }
  for (let document = 0; document < count; document++) {
    const norm = k1 * (1 - b + (b * lengths[document]!) / averageLength);
    let score = 0;
    for (let term = 0; term < width; term++) {
      const frequency = counts[document * width + term]!;
      if (frequency > 0) score += (idf[term]! * frequency * (k1 + 1)) / (frequency + norm);
    }
    scores[document]! += score;
  }
}

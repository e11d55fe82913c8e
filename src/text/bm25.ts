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
  const k1 = options.k1 ?? 1.2;
  const b = options.b ?? 0.75;
  const scores = new Float64Array(documents.length);
  const queryTerms = [...new Set(terms(query))];
  if (queryTerms.length === 0 || documents.length === 0) return scores;
  const wanted = new Set(queryTerms);
  const frequencies: Map<string, number>[] = [];
  const documentFrequency = new Map<string, number>();
  let totalLength = 0;
  const lengths = new Float64Array(documents.length);
  for (let index = 0; index < documents.length; index++) {
    const words = terms(documents[index]!);
    lengths[index] = words.length;
    totalLength += words.length;
    const counts = new Map<string, number>();
    for (const word of words) if (wanted.has(word)) counts.set(word, (counts.get(word) ?? 0) + 1);
    for (const word of counts.keys()) documentFrequency.set(word, (documentFrequency.get(word) ?? 0) + 1);
    frequencies.push(counts);
  }
  const averageLength = totalLength / documents.length || 1;
  const count = documents.length;
  for (let index = 0; index < documents.length; index++) {
    let score = 0;
    for (const [word, frequency] of frequencies[index]!) {
      const df = documentFrequency.get(word)!;
      const idf = Math.log(1 + (count - df + 0.5) / (df + 0.5));
      score += (idf * frequency * (k1 + 1)) / (frequency + k1 * (1 - b + (b * lengths[index]!) / averageLength));
    }
    scores[index] = score;
  }
  return scores;
}

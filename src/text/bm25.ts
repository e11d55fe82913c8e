import { LRUCache } from 'lru-cache';
import { timeSlicer } from '../core/turns.js';
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

/**
 * Terms are interned: each distinct term gets a small integer id, and each text's terms are kept
 * as words and as an Int32Array of ids, so BM25 counts query terms with array reads instead of
 * string lookups. The vocabulary is bounded: past `VOCABULARY_LIMIT` terms it is cleared, with the
 * memo whose ids refer to it, at the start of the next scoring call (never in the middle of one).
 */
export const VOCABULARY_LIMIT = 1 << 18;
let vocabulary = new Map<string, number>();

interface TermEntry {
  words: readonly string[];
  ids: Int32Array;
}

const termsMemo = new LRUCache<string, TermEntry>({
  maxSize: 16 * 1024 * 1024,
  sizeCalculation: (value, key) => key.length * 2 + value.words.length * 20 + 96,
});

/**
 * Longest text analysed whole. A longer one (a pasted log, a document) is represented by its head
 * and tail: its terms are for ranking, and a megabyte of them would cost a second of CPU per request.
 */
export const ANALYSED_CHARS = 32 * 1024;

function entry(text: string): TermEntry {
  const cached = termsMemo.get(text);
  if (cached) return cached;
  const analysed = text.length > ANALYSED_CHARS ? `${text.slice(0, ANALYSED_CHARS / 2)} ${text.slice(-ANALYSED_CHARS / 2)}` : text;
  const words = (analysed.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => !STOPWORDS.has(word) && !CHAT_FILLERS.has(word)).map(stem);
  const ids = new Int32Array(words.length);
  words.forEach((word, index) => {
    let id = vocabulary.get(word);
    if (id === undefined) {
      id = vocabulary.size;
      vocabulary.set(word, id);
    }
    ids[index] = id;
  });
  const value = { words, ids };
  termsMemo.set(text, value);
  return value;
}

/**
 * Analyse the texts not in the memo yet, yielding to the event loop every few milliseconds, so that
 * scoring a history of thousands of turns does not hold the server's other requests. Scoring then
 * finds every text's terms in the memo.
 */
export async function prepareTerms(texts: readonly (string | undefined)[], signal?: AbortSignal): Promise<void> {
  const pause = timeSlicer();
  for (const text of texts) {
    if (text === undefined || termsMemo.has(text)) continue;
    entry(text);
    const turn = pause();
    if (turn) {
      await turn;
      if (signal?.aborted) return;
    }
  }
}

/** Distinct terms interned so far (diagnostics and tests; bounded by `VOCABULARY_LIMIT`). */
export function vocabularySize(): number {
  return vocabulary.size;
}

/** Lower-cased, stop-worded, lightly stemmed terms; memoized by text. */
export function terms(text: string): readonly string[] {
  return entry(text).words;
}

/** Query-term slot + 1 of each vocabulary id, 0 for terms not in the query; reset after each use. */
let slots = new Uint16Array(1024);

export interface Bm25Options {
  /** @default 1.2 */
  k1?: number;
  /** @default 0.75 */
  b?: number;
}

/**
 * Okapi BM25 scores of `documents` for a query, with IDF from the documents themselves (the
 * history at hand). Returns one score per document.
 *
 * With `previous` (one entry per document: the text before it, or undefined), each document also
 * scores as the pair (document + its previous text), with its own IDF over the pairs, and the two
 * scores are added: a reply is found through the message it answers.
 */
export function bm25Scores(
  query: string,
  documents: readonly string[],
  options: Bm25Options & { previous?: readonly (string | undefined)[] } = {},
): Float64Array {
  if (vocabulary.size > VOCABULARY_LIMIT) {
    vocabulary = new Map();
    termsMemo.clear();
  }
  const k1 = options.k1 ?? 1.2;
  const b = options.b ?? 0.75;
  const count = documents.length;
  const scores = new Float64Array(count);
  const unique = [...new Set(entry(query).ids)];
  const width = unique.length;
  if (width === 0 || count === 0) return scores;
  // Every text's ids first, so the vocabulary is complete before the slot table is sized.
  const documentIds = documents.map((document) => entry(document).ids);
  const previous = options.previous;
  // Usually a document's previous text is the document before it: the same string, the same ids.
  const previousIds = previous?.map((text, document) =>
    text === undefined ? undefined : text === documents[document - 1] ? documentIds[document - 1]! : entry(text).ids,
  );
  if (slots.length < vocabulary.size) slots = new Uint16Array(Math.max(vocabulary.size, slots.length * 2));
  // A query of more than 65,535 distinct terms keeps the first ones.
  const used = Math.min(width, 0xffff);
  for (let slot = 0; slot < used; slot++) slots[unique[slot]!] = slot + 1;
  try {
    // Counts of each query term per document (and per pair): flat typed arrays.
    const counts = new Uint32Array(count * used);
    const lengths = new Float64Array(count);
    const countInto = (ids: Int32Array, target: Uint32Array, offset: number): void => {
      for (let index = 0; index < ids.length; index++) {
        const slot = slots[ids[index]!]!;
        if (slot > 0) target[offset + slot - 1]!++;
      }
    };
    for (let document = 0; document < count; document++) {
      lengths[document] = documentIds[document]!.length;
      countInto(documentIds[document]!, counts, document * used);
    }
    addScores(scores, counts, lengths, count, used, k1, b);
    if (previousIds) {
      const pairCounts = new Uint32Array(counts);
      const pairLengths = new Float64Array(lengths);
      for (let document = 0; document < count; document++) {
        const ids = previousIds[document];
        if (!ids) continue;
        pairLengths[document]! += ids.length;
        countInto(ids, pairCounts, document * used);
      }
      addScores(scores, pairCounts, pairLengths, count, used, k1, b);
    }
  } finally {
    for (let slot = 0; slot < used; slot++) slots[unique[slot]!] = 0;
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

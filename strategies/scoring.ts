import { withDeadline } from '../src/core/deadline.js';
import { rethrowIfAborted, throwIfAborted } from '../src/core/errors.js';
import { type Rule, rules } from '../src/core/define-options.js';
import type { FailureRecord, StrategyContext } from '../src/core/strategy.js';
import type { Messages } from '../src/core/types.js';
import type { Partition } from '../src/core/units.js';
import { dotMany } from '../src/embedders/dot-many.js';
import type { EmbeddingCache } from '../src/embedders/memo.js';
import type { Embedder } from '../src/embedders/types.js';
import { encoderUnavailable } from '../src/runtime.js';
import { bm25Scores, prepareTerms } from '../src/text/bm25.js';
import { nextTurn, timeSlicer } from '../src/core/turns.js';
import { WARMING } from '../src/core/stats.js';
import { messageText } from '../src/text/message-text.js';

/** How units are scored against the latest message: shared by the strategies that pick by relevance. */
export interface ScoringOptions {
  /**
   * Dense embedder for the semantic half of the hybrid. `null` scores with BM25 alone.
   * @default the compactor's `embedder`, else the runtime's default encoder: Universal Sentence
   * Encoder lite (offline, chosen by measurement: see bench/notes/HISTORY.md), or none when its optional
   * packages are not installed
   */
  embedder?: Embedder | null;
  /** Weight of the dense ranking in reciprocal rank fusion. @default 1 */
  denseWeight?: number;
  /** Weight of the BM25 ranking in reciprocal rank fusion. @default 1 */
  sparseWeight?: number;
  /**
   * The k of reciprocal rank fusion: 1 / (k + rank). Lower favours the top of each ranking; 10
   * beat the customary 60 by about 0.08 ER_verbatim at 2k tokens on LoCoMo dev.
   * @default 10
   */
  rrfK?: number;
  /** Add the assistant turn before the latest user message to the query. @default false */
  includePreviousAssistant?: boolean;
  /** Turns on each side of a hit that inherit its score, at a discount. @default 1 */
  neighbours?: number;
  /** Share of a hit's score its neighbours inherit. @default 0.5 */
  neighbourDiscount?: number;
  /**
   * Embed the history's missing messages on the request path. Off by default: only the query is
   * embedded on the path, messages without a vector yet (the newest, or all of a cold history)
   * get no dense score for this request and are embedded in the background for the next one.
   * Benches of the idealised path turn it on.
   * @default false
   */
  awaitDocuments?: boolean;
  /** Milliseconds to wait for embeddings before falling back to BM25 alone (the embedding goes on, to warm the memo). @default 250 */
  embedTimeoutMs?: number;
  /** Embedding memo. @default the runtime's (one per process, shared with the response cache) */
  embeddings?: EmbeddingCache;
  /**
   * Characters of the previous message read with each message (0 disables). A reply's subject is
   * often in the message it answers ("Yes, twice last summer!"), so each message is embedded as
   * itself followed by the start of the one before it, and its BM25 score adds the score of that
   * pair to its own. On LoCoMo dev this kept 0.04–0.07 more evidence at 1k–4k tokens than the
   * message alone (bench/notes/HISTORY.md). The pair is one text, embedded once and memoized like any
   * other, so a new turn still costs one embedding.
   * @default 400
   */
  previousContext?: number;
}

export const SCORING_DEFAULTS = {
  denseWeight: 1,
  sparseWeight: 1,
  rrfK: 10,
  includePreviousAssistant: false,
  neighbours: 1,
  neighbourDiscount: 0.5,
  embedTimeoutMs: 250,
  awaitDocuments: false,
  previousContext: 400,
};

export type ScoringSettings = typeof SCORING_DEFAULTS & Pick<ScoringOptions, 'embedder' | 'embeddings'>;

/** The rules of the scoring options, shared by every strategy that scores (relevance, cache-aware). */
export const SCORING_RULES = {
  embedder: {
    expected: 'an Embedder ({ id, dimensions, embed }) or null',
    test: (value: unknown) => value === null || (typeof value === 'object' && typeof (value as { embed?: unknown }).embed === 'function'),
    invalid: 42,
  },
  denseWeight: rules.number(0, 100),
  sparseWeight: rules.number(0, 100),
  rrfK: rules.number(0, 10_000),
  includePreviousAssistant: rules.boolean,
  neighbours: rules.int(0, 10),
  neighbourDiscount: rules.number(0, 1),
  awaitDocuments: rules.boolean,
  embedTimeoutMs: rules.number(0, 600_000),
  embeddings: rules.custom('an EmbeddingCache'),
  previousContext: rules.number(0, 100_000),
} satisfies Record<keyof Required<ScoringOptions>, Rule>;

/** Validates the scoring options once, at construction. */
/** 1-based rank of each score (highest first); ties share the lower rank. */
function ranks(scores: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: scores.length }, (_, index) => index).sort((a, b) => scores[b]! - scores[a]!);
  const result = new Float64Array(scores.length);
  order.forEach((index, position) => {
    result[index] = position > 0 && scores[order[position - 1]!] === scores[index] ? result[order[position - 1]!]! : position + 1;
  });
  return result;
}

export interface Scores {
  /** Score of each unit (by unit index; 0 for units that were not candidates, or that nothing matched). */
  readonly score: Float64Array;
  /** Whether dense scores took part. */
  readonly dense: boolean;
  /** Candidates that had a vector already (the rest had no dense score). */
  readonly vectors: number;
  /** No candidate had a vector yet: a cold history, scored by BM25 alone on this request. */
  readonly cold: boolean;
  /** The highest cosine between the query and a candidate (undefined without dense scores). */
  readonly bestCosine: number | undefined;
  /** Per unit: its own cosine with the query (-Infinity without one). */
  readonly cosine: Float64Array;
  /** Per unit: its raw BM25 score against the query, its previous message's start included (0 for non-candidates). */
  readonly sparse: Float64Array;
  readonly failures: FailureRecord[];
  readonly info: Record<string, unknown>;
}

/**
 * Scores `candidates` (unit indices) against the latest user message by reciprocal rank fusion of
 * dense cosine and BM25, each reading a unit with the start of the one before it; a hit lends a
 * discounted score to its neighbours. The query is embedded on the request path; units without a
 * vector are embedded in the background (unless `awaitDocuments`), so the next request has them.
 */
/** Texts looked up in the embedding memo between two yields to the event loop. */
const PEEK_SLICE = 512;

/** The memo's vectors for `texts` (undefined where missing), in slices with yields: hashing thousands of texts at once would hold the event loop. */
async function peekAll(cache: EmbeddingCache, embedder: Embedder, texts: readonly string[]): Promise<(Float32Array | undefined)[]> {
  const vectors: (Float32Array | undefined)[] = [];
  for (let start = 0; start < texts.length; start += PEEK_SLICE) {
    if (start > 0) await nextTurn();
    vectors.push(...cache.peek(embedder, texts.slice(start, start + PEEK_SLICE)));
  }
  return vectors;
}

export async function scoreUnits(
  messages: Messages,
  parts: Partition,
  candidates: readonly number[],
  context: StrategyContext,
  settings: ScoringSettings,
  strategy: string,
  /**
   * Consulted with the BM25 scores (by unit) before the query is embedded: false skips the dense
   * half for this request (the history's missing vectors are still embedded in the background).
   */
  sparseGate?: (sparse: Float64Array) => boolean,
): Promise<Scores> {
  const units = parts.units;
  const unitText = (unit: number) => units[unit]!.indices.map((index) => messageText(messages[index]!)).join('\n');
  // Each message is also read with the start of the one before it, unless that one is protected
  // (a system prompt says nothing about the turn after it). Where the previous message is itself
  // a candidate (usually), its text and terms are reused. Built with yields: thousands of units
  // are megabytes of strings.
  const texts: string[] = new Array(candidates.length);
  const previousText: (string | undefined)[] = new Array(candidates.length);
  const paired: string[] = new Array(candidates.length);
  const pause = timeSlicer();
  for (let position = 0; position < candidates.length; position++) {
    const unit = candidates[position]!;
    const text = unitText(unit);
    texts[position] = text;
    let previous: string | undefined;
    if (settings.previousContext > 0 && unit !== 0 && !units[unit - 1]!.protected) {
      previous = position > 0 && candidates[position - 1] === unit - 1 ? texts[position - 1]! : unitText(unit - 1);
    }
    previousText[position] = previous;
    paired[position] = previous === undefined ? text : `${text}\n${previous.slice(0, settings.previousContext)}`;
    const turn = position % 64 === 63 ? pause() : undefined;
    if (turn) {
      await turn;
      throwIfAborted(context.signal);
    }
  }
  const latest = parts.latestUser >= 0 ? parts.latestUser : messages.length - 1;
  let query = messageText(messages[latest]!);
  if (settings.includePreviousAssistant) {
    for (let index = latest - 1; index >= 0; index--) {
      if (messages[index]!.role === 'assistant') {
        query = `${messageText(messages[index]!)}\n${query}`;
        break;
      }
      if (messages[index]!.role === 'user') break;
    }
  }

  const failures: FailureRecord[] = [];
  await prepareTerms([query, ...texts, ...previousText], context.signal);
  const sparseStarted = performance.now();
  const sparse = bm25Scores(query, texts, settings.previousContext > 0 ? { previous: previousText } : {});
  const sparseMs = performance.now() - sparseStarted;
  const sparseByUnit = new Float64Array(units.length);
  candidates.forEach((unit, position) => {
    sparseByUnit[unit] = sparse[position]!;
  });
  const skipDense = sparseGate !== undefined && !sparseGate(sparseByUnit);
  let dense: Float64Array | undefined;
  let vectors = 0;
  const cache = settings.embeddings ?? context.runtime.embeddings;
  const embedder = settings.embedder === undefined ? (context.embedder ?? context.runtime.defaultEmbedder()) : settings.embedder;
  const timings = { embedMs: 0, scoreMs: 0 };
  if (embedder && settings.denseWeight > 0 && candidates.length > 0 && skipDense) {
    // No query to embed: only the history's missing vectors, in the background, for the next request.
    try {
      const found = await peekAll(cache, embedder, paired);
      const missing = paired.filter((_, index) => found[index] === undefined);
      vectors = paired.length - missing.length;
      if (missing.length > 0) cache.warm(embedder, missing);
    } catch (error) {
      rethrowIfAborted(error, context.signal);
    }
  } else if (embedder && settings.denseWeight > 0 && candidates.length > 0) {
    try {
      const embedStarted = performance.now();
      let documentVectors: (Float32Array | undefined)[];
      let queryVector: Float32Array;
      if (settings.awaitDocuments) {
        const all = await withDeadline(
          cache.embed(embedder, [query, ...paired], { signal: context.signal }),
          settings.embedTimeoutMs,
          'embedder',
          context.signal,
        );
        queryVector = all[0]!;
        documentVectors = all.slice(1);
      } else {
        documentVectors = await peekAll(cache, embedder, paired);
        const missing = paired.filter((_, index) => documentVectors[index] === undefined);
        // The query first: in-process encoders run one batch at a time.
        const pending = cache.embed(embedder, [query], { signal: context.signal });
        if (missing.length > 0) pending.finally(() => cache.warm(embedder, missing)).catch(() => undefined);
        queryVector = (await withDeadline(pending, settings.embedTimeoutMs, 'embedder', context.signal))[0]!;
      }
      vectors = documentVectors.filter(Boolean).length;
      timings.embedMs = performance.now() - embedStarted;
      const scoreStarted = performance.now();
      dense = dotMany(queryVector, documentVectors);
      timings.scoreMs += performance.now() - scoreStarted;
    } catch (error) {
      rethrowIfAborted(error, context.signal);
      if (embedder.ready?.() === false) failures.push({ strategy, code: WARMING, message: `embedder ${embedder.id} is still loading, BM25 only` });
      else failures.push({ strategy, code: 'upstream.failed', message: `embedder ${embedder.id} failed, BM25 only: ${(error as Error).message}` });
    }
  }
  throwIfAborted(context.signal);
  timings.scoreMs += sparseMs;

  // Reciprocal rank fusion; a unit BM25 gives no score gets no sparse credit, and one with no
  // vector yet no dense credit.
  const fused = new Float64Array(units.length);
  const sparseRanks = ranks(sparse);
  const denseRanks = dense ? ranks(dense) : undefined;
  candidates.forEach((unit, position) => {
    let score = 0;
    if (sparse[position]! > 0) score += settings.sparseWeight / (settings.rrfK + sparseRanks[position]!);
    if (denseRanks && dense![position]! > -Infinity) score += settings.denseWeight / (settings.rrfK + denseRanks[position]!);
    fused[unit] = score;
  });
  const score = new Float64Array(fused);
  if (settings.neighbours > 0) {
    const isCandidate = new Uint8Array(units.length);
    for (const unit of candidates) isCandidate[unit] = 1;
    for (const unit of candidates) {
      for (let offset = -settings.neighbours; offset <= settings.neighbours; offset++) {
        const neighbour = unit + offset;
        if (offset === 0 || neighbour < 0 || neighbour >= units.length || !isCandidate[neighbour]) continue;
        score[unit] = Math.max(score[unit]!, fused[neighbour]! * settings.neighbourDiscount);
      }
    }
  }
  const cosine = new Float64Array(units.length).fill(-Infinity);
  let bestCosine: number | undefined;
  if (dense) {
    candidates.forEach((unit, position) => {
      const value = dense![position]!;
      cosine[unit] = value;
      if (value > -Infinity && (bestCosine === undefined || value > bestCosine)) bestCosine = value;
    });
  }
  const info: Record<string, unknown> = { dense: Boolean(dense), vectors, candidates: candidates.length, embedMs: timings.embedMs, scoreMs: timings.scoreMs };
  if (bestCosine !== undefined) info.bestCosine = Number(bestCosine.toFixed(4));
  // A lean install (no encoder) is a choice, not a failure: said in stats, and once in the process's warnings.
  if (!embedder && settings.embedder === undefined && !context.embedder) info.encoder = encoderUnavailable() ?? 'none';
  return { score, dense: Boolean(dense), vectors, cold: candidates.length > 0 && vectors === 0, bestCosine, cosine, sparse: sparseByUnit, failures, info };
}

import { bm25Scores } from '../../src/text/bm25.js';
import { withDeadline } from '../../src/core/deadline.js';
import { invalidOption, isAbortError, throwIfAborted } from '../../src/core/errors.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import type { EmbeddingCache } from '../../src/embedders/memo.js';
import type { Embedder } from '../../src/embedders/types.js';
import { dotMany } from '../../src/embedders/dot-many.js';
import { encoderUnavailable } from '../../src/runtime.js';
import type { FailureRecord, Strategy } from '../../src/core/strategy.js';
import { messageText } from '../../src/text/message-text.js';
import type { ChatMessage } from '../../src/core/types.js';

export interface RelevanceOptions {
  /**
   * Dense embedder for the semantic half of the hybrid. `null` scores with BM25 alone.
   * @default the compactor's `embedder`, else the runtime's default encoder: Universal Sentence
   * Encoder lite (offline, chosen by measurement: see bench/RESULTS.md), or none when its optional
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
  /** Share of the budget (after protected messages) kept for the most recent turns. @default 0.1 */
  recencyShare?: number;
  /**
   * Marks the first message of a session and captures its header (e.g. its date). A kept turn
   * whose session header was dropped gets the header back in its omission marker, because
   * temporal questions need dates. `null` disables.
   * @default /^\[Session [^\]]*\]/
   */
  sessionHeader?: RegExp | null;
  /**
   * Insert a short marker where turns were omitted (counted in the budget). Off by default: on
   * LoCoMo a marker per gap cost about 0.07 of ER_verbatim at 2k tokens (bench/RESULTS.md).
   * @default false
   */
  markers?: boolean;
  /**
   * Leave out the session header notes: by default a kept turn whose session header (see
   * `sessionHeader`) was dropped gets it back, one short note per session, counted in the budget,
   * because temporal questions need dates.
   * @default false
   */
  omitSessionHeaders?: boolean;
  /** Role of marker messages. @default 'system' */
  markerRole?: 'system' | 'user' | 'assistant';
  /**
   * Embed the history's missing messages on the request path. Off by default: only the query is
   * embedded on the path, messages without a vector yet (the newest, or all of a cold history)
   * get no dense score for this request and are embedded in the background for the next one.
   * Benches turn it on so results do not depend on timing.
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
   * message alone (bench/RESULTS.md). The pair is one text, embedded once and memoized like any
   * other, so a new turn still costs one embedding.
   * @default 400
   */
  previousContext?: number;
}

export const RELEVANCE_DEFAULTS = {
  denseWeight: 1,
  sparseWeight: 1,
  rrfK: 10,
  includePreviousAssistant: false,
  neighbours: 1,
  neighbourDiscount: 0.5,
  recencyShare: 0.1,
  sessionHeader: SESSION_HEADER as RegExp | null,
  markers: false,
  omitSessionHeaders: false,
  markerRole: 'system' as const,
  embedTimeoutMs: 250,
  awaitDocuments: false,
  previousContext: 400,
};

function checkNumber(option: string, value: number, minimum: number, maximum: number): void {
  if (typeof value !== 'number' || !(value >= minimum && value <= maximum)) invalidOption(option, `a number from ${minimum} to ${maximum}`, value);
}

/** 1-based rank of each score (highest first); ties share the lower rank. */
function ranks(scores: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: scores.length }, (_, index) => index).sort((a, b) => scores[b]! - scores[a]!);
  const result = new Float64Array(scores.length);
  order.forEach((index, position) => {
    result[index] = position > 0 && scores[order[position - 1]!] === scores[index] ? result[order[position - 1]!]! : position + 1;
  });
  return result;
}

/**
 * Query-aware relevance pruning: keeps the turns the latest question needs. Every droppable unit
 * is scored by reciprocal rank fusion of dense cosine (when an embedder is set) and BM25; hits lend
 * a discounted score to their neighbours; a share of the budget goes to the most recent turns; the
 * rest is filled greedily by score, and the output stays chronological.
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: relevance({ embedder: useLite() }) })
 */
export function relevance(options: RelevanceOptions = {}): Strategy {
  const settings = { ...RELEVANCE_DEFAULTS, ...options };
  checkNumber('denseWeight', settings.denseWeight, 0, 100);
  checkNumber('sparseWeight', settings.sparseWeight, 0, 100);
  checkNumber('rrfK', settings.rrfK, 0, 10_000);
  checkNumber('neighbours', settings.neighbours, 0, 10);
  checkNumber('neighbourDiscount', settings.neighbourDiscount, 0, 1);
  checkNumber('recencyShare', settings.recencyShare, 0, 1);
  checkNumber('embedTimeoutMs', settings.embedTimeoutMs, 0, 600_000);
  checkNumber('previousContext', settings.previousContext, 0, 100_000);
  if (!Number.isInteger(settings.neighbours)) invalidOption('neighbours', 'an integer from 0 to 10', settings.neighbours);
  if (settings.sessionHeader !== null && !(settings.sessionHeader instanceof RegExp))
    invalidOption('sessionHeader', 'a RegExp or null', settings.sessionHeader);
  if (!['system', 'user', 'assistant'].includes(settings.markerRole)) invalidOption('markerRole', '"system", "user" or "assistant"', settings.markerRole);
  if (settings.embedder !== undefined && settings.embedder !== null && typeof settings.embedder.embed !== 'function') {
    invalidOption('embedder', 'an Embedder ({ id, dimensions, embed }) or null', settings.embedder);
  }

  return {
    name: 'relevance',
    async apply(messages, context) {
      const parts = context.partition(messages);
      const counter = context.counter;
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const available = context.budget - context.fixedTokens - parts.protectedTokens;
      const units = parts.units;
      const keep = new Uint8Array(units.length);
      for (let unit = 0; unit < units.length; unit++) if (units[unit]!.protected) keep[unit] = 1;
      if (available <= 0) return { messages: messages.filter((_, index) => keep[parts.unitOf[index]!]) };

      // Recency: the newest whole turns, up to the reserved share.
      let recencyLeft = Math.floor(available * settings.recencyShare);
      let used = 0;
      let oldestRecent = parts.turns + 1;
      for (let turn = parts.turns; turn >= 0 && recencyLeft > 0; turn--) {
        const tokens = parts.turnTokens[turn]!;
        if (tokens === 0) continue;
        if (tokens > recencyLeft) break;
        recencyLeft -= tokens;
        used += tokens;
        oldestRecent = turn;
      }
      for (let unit = 0; unit < units.length; unit++) if (!units[unit]!.protected && units[unit]!.turn >= oldestRecent) keep[unit] = 2;

      const candidates: number[] = [];
      for (let unit = 0; unit < units.length; unit++) if (!keep[unit]) candidates.push(unit);
      const unitText = (unit: number) => units[unit]!.indices.map((index) => messageText(messages[index]!)).join('\n');
      const texts = candidates.map(unitText);
      // Each message is also read with the start of the one before it, unless that one is protected
      // (a system prompt says nothing about the turn after it).
      // Where the previous message is itself a candidate (usually), its text and terms are reused.
      const previousCandidate = candidates.map((unit, position) => (position > 0 && candidates[position - 1] === unit - 1 ? position - 1 : -1));
      const previousText = candidates.map((unit, position) => {
        if (settings.previousContext <= 0 || unit === 0 || units[unit - 1]!.protected) return undefined;
        return previousCandidate[position]! >= 0 ? texts[previousCandidate[position]!]! : unitText(unit - 1);
      });
      const paired = texts.map((text, position) =>
        previousText[position] === undefined ? text : `${text}\n${previousText[position]!.slice(0, settings.previousContext)}`,
      );
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
      const sparseStarted = performance.now();
      const sparse = bm25Scores(query, texts, settings.previousContext > 0 ? { previous: previousText } : {});
      const sparseMs = performance.now() - sparseStarted;
      let dense: Float64Array | undefined;
      let vectorsSeen = 0;
      const cache = settings.embeddings ?? context.runtime.embeddings;
      const embedder = settings.embedder === undefined ? (context.embedder ?? context.runtime.defaultEmbedder()) : settings.embedder;
      const timings = { embedMs: 0, scoreMs: 0 };
      if (embedder && settings.denseWeight > 0) {
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
            documentVectors = cache.peek(embedder, paired);
            const missing = paired.filter((_, index) => documentVectors[index] === undefined);
            // The query first: in-process encoders run one batch at a time.
            const pending = cache.embed(embedder, [query], { signal: context.signal });
            if (missing.length > 0) pending.finally(() => cache.warm(embedder, missing)).catch(() => undefined);
            queryVector = (await withDeadline(pending, settings.embedTimeoutMs, 'embedder', context.signal))[0]!;
          }
          vectorsSeen = documentVectors.filter(Boolean).length;
          timings.embedMs = performance.now() - embedStarted;
          const scoreStarted = performance.now();
          dense = dotMany(queryVector, documentVectors);
          timings.scoreMs += performance.now() - scoreStarted;
        } catch (error) {
          if (isAbortError(error) || context.signal?.aborted) throw error;
          failures.push({ strategy: 'relevance', code: 'upstream.failed', message: `embedder ${embedder.id} failed, BM25 only: ${(error as Error).message}` });
        }
      }
      throwIfAborted(context.signal);
      timings.scoreMs += sparseMs;

      // Reciprocal rank fusion; a unit BM25 gives no score gets no sparse credit.
      const fused = new Float64Array(units.length);
      const sparseRanks = ranks(sparse);
      const denseRanks = dense ? ranks(dense) : undefined;
      candidates.forEach((unit, position) => {
        let score = 0;
        if (sparse[position]! > 0) score += settings.sparseWeight / (settings.rrfK + sparseRanks[position]!);
        // A message with no vector yet gets no dense credit.
        if (denseRanks && dense![position]! > -Infinity) score += settings.denseWeight / (settings.rrfK + denseRanks[position]!);
        fused[unit] = score;
      });
      const final = new Float64Array(fused);
      if (settings.neighbours > 0) {
        for (const unit of candidates) {
          for (let offset = -settings.neighbours; offset <= settings.neighbours; offset++) {
            const neighbour = unit + offset;
            if (offset === 0 || neighbour < 0 || neighbour >= units.length) continue;
            final[unit] = Math.max(final[unit]!, fused[neighbour]! * settings.neighbourDiscount);
          }
        }
      }
      const order = [...candidates].sort((a, b) => final[b]! - final[a]! || b - a);
      let left = available - used;
      const picked: number[] = [];
      for (const unit of order) {
        if (final[unit]! <= 0) break;
        if (units[unit]!.tokens > left) continue;
        keep[unit] = 1;
        left -= units[unit]!.tokens;
        picked.push(unit);
      }

      // Build the output with markers; while markers push it over budget, drop the weakest pick.
      const sessionOf = sessions(messages, settings.sessionHeader);
      const done = (output: ChatMessage[]) => {
        const info: Record<string, unknown> = {
          dense: Boolean(dense),
          vectors: vectorsSeen,
          candidates: texts.length,
          kept: picked.length,
          embedMs: timings.embedMs,
          scoreMs: timings.scoreMs,
        };
        // A lean install (no encoder) is a choice, not a failure: said in stats, and once in the process's warnings.
        if (!embedder && settings.embedder === undefined && !context.embedder) info.encoder = encoderUnavailable() ?? 'none';
        return { messages: output, failures, info };
      };
      const fits = (output: readonly ChatMessage[]) => {
        let tokens = context.fixedTokens;
        for (const message of output) tokens += counter.message(message);
        return tokens <= context.budget;
      };
      for (;;) {
        const output = assemble(messages, parts.unitOf, keep, sessionOf, settings.markers, !settings.omitSessionHeaders, settings.markerRole);
        if (fits(output)) return done(output);
        // With no pick left to give up, the notes go: what was kept fits without them.
        if (picked.length === 0) return done(assemble(messages, parts.unitOf, keep, sessionOf, false, false, settings.markerRole));
        keep[picked.pop()!] = 0;
      }
    },
  };
}

interface Sessions {
  /** For each message, the index of the first message of its session, or -1. */
  first: Int32Array;
  /** For each message, its session's header text, or ''. */
  header: string[];
}

function sessions(messages: readonly ChatMessage[], pattern: RegExp | null): Sessions {
  const first = new Int32Array(messages.length).fill(-1);
  const header: string[] = new Array(messages.length).fill('');
  if (!pattern) return { first, header };
  let start = -1;
  let text = '';
  for (let index = 0; index < messages.length; index++) {
    const content = messages[index]!.content;
    const match = typeof content === 'string' ? pattern.exec(content) : null;
    if (match && match.index === 0) {
      start = index;
      text = match[0];
    }
    first[index] = start;
    header[index] = text;
  }
  return { first, header };
}

function assemble(
  messages: readonly ChatMessage[],
  unitOf: Int32Array,
  keep: Uint8Array,
  sessionOf: Sessions,
  markers: boolean,
  headers: boolean,
  role: 'system' | 'user' | 'assistant',
): ChatMessage[] {
  const output: ChatMessage[] = [];
  let omitted = 0;
  let shownHeader = '';
  for (let index = 0; index < messages.length; index++) {
    if (!(keep[unitOf[index]!]! > 0)) {
      omitted++;
      continue;
    }
    const message = messages[index]!;
    const header = sessionOf.header[index]!;
    const startsSession = sessionOf.first[index] === index;
    const needHeader = headers && header !== '' && header !== shownHeader && !startsSession;
    const canMark = message.role !== 'system' && message.role !== 'developer' && message.role !== 'tool' && message.role !== 'function';
    if (canMark && ((markers && omitted > 0) || needHeader)) {
      const note = markers && omitted > 0 ? `[${omitted} earlier messages omitted]` : '';
      output.push({ role, content: needHeader ? `${note}${note ? ' ' : ''}${header}` : note });
      omitted = 0;
    }
    if (needHeader || startsSession) shownHeader = header;
    output.push(message);
    if (canMark) omitted = 0;
  }
  return output;
}

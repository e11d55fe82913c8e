import { hash } from 'node:crypto';
import { withDeadline } from '../../src/core/deadline.js';
import { invalidOption, isAbortError } from '../../src/core/errors.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import type { FailureRecord, Strategy } from '../../src/core/strategy.js';
import { extractiveSummarizer } from '../../src/summarizers/extractive.js';
import type { SummaryQueue, SummaryStore } from '../../src/summarizers/queue.js';
import type { Summarizer } from '../../src/summarizers/types.js';
import { messageKey } from '../../src/tokens/counter.js';
import type { ChatMessage } from '../../src/core/types.js';

export interface SummarizeStrategyOptions {
  /** @default extractiveSummarizer() */
  summarizer?: Summarizer;
  /**
   * How the history is cut into fixed chunks: at session headers (see `sessionHeader`), every
   * `chunkTokens` tokens at turn boundaries, or `auto` (sessions when the history has headers).
   * @default 'auto'
   */
  chunking?: 'auto' | 'session' | 'tokens';
  /** Chunk size for token chunking. @default 1200 */
  chunkTokens?: number;
  /** Marks the first message of a session. @default /^\[Session [^\]]*\]/ */
  sessionHeader?: RegExp;
  /** Length of each chunk's summary, in tokens. @default 120 */
  summaryTokens?: number;
  /**
   * When summaries take more than this share of the budget, the oldest are summarized again in
   * fixed groups; if still over, the oldest summaries are dropped.
   * @default 0.5
   */
  summaryShare?: number;
  /** Summaries per group when summarizing summaries. @default 4 */
  groupSize?: number;
  /** Role of summary messages. `system` keeps them from being pruned by later strategies. @default 'system' */
  role?: 'system' | 'assistant';
  /**
   * `background`: use the summaries that exist and schedule the missing ones for the next turn
   * (no summarizer call on the request path). `inline`: wait for them up to `inlineTimeoutMs`.
   * @default 'background'
   */
  mode?: 'background' | 'inline';
  /** Milliseconds an `inline` request waits for its summaries before going on without them. @default 2000 */
  inlineTimeoutMs?: number;
  /**
   * Keep the summarized messages in the output, after their summary, for a later strategy (such
   * as relevance in the `balanced` preset) to prune. Every complete chunk is then summarized, up
   * to `summaryShare` of the budget.
   * @default false
   */
  keepSource?: boolean;
  /** Where summaries are kept. @default the runtime's (one memory store per process) */
  store?: SummaryStore;
  /** The background queue. @default the runtime's (one per process) */
  queue?: SummaryQueue;
}

export const SUMMARIZE_DEFAULTS = {
  chunking: 'auto' as const,
  chunkTokens: 1200,
  sessionHeader: SESSION_HEADER,
  summaryTokens: 120,
  summaryShare: 0.5,
  groupSize: 4,
  role: 'system' as const,
  mode: 'background' as const,
  inlineTimeoutMs: 2000,
  keepSource: false,
};

export const SUMMARY_LABEL = '[Summary of earlier conversation]';

interface Item {
  key: string;
  /** Message indices this item stands for (non-protected members of its chunks). */
  first: number;
  members: number[];
  tokens: number;
  level: number;
  text?: string;
}

function keyOf(parts: readonly string[]): string {
  return hash('sha256', parts.join('\u0000'), 'base64url');
}

/**
 * Rolling, prefix-stable summaries: the history is cut into fixed chunks (sessions, or every N
 * tokens at turn boundaries); when the request is over budget, the oldest complete chunks are
 * replaced by their summaries, keyed by the hashes of their messages so the same chunk gives the
 * same bytes every turn. Summaries are appended as the conversation grows, never rewritten, so the
 * provider's prompt cache keeps hitting. Protected messages and tool-call units are never cut.
 *
 * @example
 * pipeline('summarize', [summarize({ mode: 'background' }), truncate()])
 */
export function summarize(options: SummarizeStrategyOptions = {}): Strategy {
  const settings = { ...SUMMARIZE_DEFAULTS, ...options };
  const summarizer = settings.summarizer ?? extractiveSummarizer();
  if (typeof summarizer?.summarize !== 'function' || typeof summarizer.id !== 'string')
    invalidOption('summarizer', 'a Summarizer ({ id, summarize })', summarizer);
  if (!['auto', 'session', 'tokens'].includes(settings.chunking)) invalidOption('chunking', '"auto", "session" or "tokens"', settings.chunking);
  if (!Number.isInteger(settings.chunkTokens) || settings.chunkTokens < 50) invalidOption('chunkTokens', 'an integer >= 50', settings.chunkTokens);
  if (!Number.isInteger(settings.summaryTokens) || settings.summaryTokens < 10) invalidOption('summaryTokens', 'an integer >= 10', settings.summaryTokens);
  if (typeof settings.summaryShare !== 'number' || !(settings.summaryShare > 0 && settings.summaryShare <= 1))
    invalidOption('summaryShare', 'a number in (0, 1]', settings.summaryShare);
  if (!Number.isInteger(settings.groupSize) || settings.groupSize < 2) invalidOption('groupSize', 'an integer >= 2', settings.groupSize);
  if (settings.role !== 'system' && settings.role !== 'assistant') invalidOption('role', '"system" or "assistant"', settings.role);
  if (settings.mode !== 'background' && settings.mode !== 'inline') invalidOption('mode', '"background" or "inline"', settings.mode);
  if (!Number.isInteger(settings.inlineTimeoutMs) || settings.inlineTimeoutMs < 0)
    invalidOption('inlineTimeoutMs', 'an integer >= 0', settings.inlineTimeoutMs);
  if (!(settings.sessionHeader instanceof RegExp)) invalidOption('sessionHeader', 'a RegExp', settings.sessionHeader);

  return {
    name: 'summarize',
    async apply(messages, context) {
      const parts = context.partition(messages);
      const counter = context.counter;
      const store = settings.store ?? context.runtime.summaryStore;
      const queue = settings.queue ?? context.runtime.summaryQueue;
      const total = context.fixedTokens + parts.tokens;
      if (total <= context.budget) return { messages };
      const failures: FailureRecord[] = [];

      // Fixed chunks over the droppable units. Boundaries depend only on what precedes them, so
      // a chunk's membership never changes as the conversation grows.
      const header = settings.sessionHeader;
      const bySession =
        settings.chunking === 'session' ||
        (settings.chunking === 'auto' && messages.some((message) => typeof message.content === 'string' && header.test(message.content)));
      const chunks: { units: number[]; tokens: number }[] = [];
      let current: { units: number[]; tokens: number } | undefined;
      for (let unit = 0; unit < parts.units.length; unit++) {
        const entry = parts.units[unit]!;
        if (entry.protected) continue;
        const first = messages[entry.indices[0]!]!;
        const startsSession = bySession && typeof first.content === 'string' && header.test(first.content);
        const startsTurn = first.role === 'user';
        if (!current || startsSession || (!bySession && startsTurn && current.tokens >= settings.chunkTokens)) {
          current = { units: [], tokens: 0 };
          chunks.push(current);
        }
        current.units.push(unit);
        current.tokens += entry.tokens;
      }
      // The newest chunk may still grow: only the ones before it are complete.
      const complete = Math.max(0, chunks.length - 1);
      const overhead = counter.message({ role: settings.role, content: SUMMARY_LABEL }) + 2;
      const items: Item[] = chunks.slice(0, complete).map((chunk) => {
        const members = chunk.units.flatMap((unit) => parts.units[unit]!.indices).sort((a, b) => a - b);
        return {
          key: keyOf([summarizer.id, String(settings.summaryTokens), ...members.map((index) => messageKey(messages[index]!))]),
          first: members[0]!,
          members,
          tokens: chunk.tokens,
          level: 0,
        };
      });

      const fetchSummary = async (item: Item, source: readonly ChatMessage[], maxTokens: number): Promise<string | undefined> => {
        let text: string | undefined;
        try {
          text = await store.get(item.key);
        } catch (error) {
          failures.push({ strategy: 'summarize', code: 'upstream.failed', message: `summary store failed: ${(error as Error).message}` });
          return undefined;
        }
        if (text !== undefined) return text;
        const job = queue.schedule(item.key, async (signal) => {
          const summary = await summarizer.summarize(source, { signal, maxTokens, countTokens: (value) => counter.text(value) });
          await store.set(item.key, summary);
        });
        if (settings.mode === 'background' || job === undefined) return undefined;
        try {
          await withDeadline(job, settings.inlineTimeoutMs, 'summary', context.signal);
          return await store.get(item.key);
        } catch (error) {
          if (isAbortError(error) || context.signal?.aborted) throw error;
          failures.push({ strategy: 'summarize', code: 'upstream.failed', message: `summarizer ${summarizer.id} failed: ${(error as Error).message}` });
          return undefined;
        }
      };

      const droppedMembers = new Set<number>();
      // Fold the oldest chunks, in order, until the request fits (or every complete chunk is folded).
      let rest = total;
      const folded: Item[] = [];
      for (const item of items) {
        if (rest <= context.budget && !settings.keepSource) break;
        const text = await fetchSummary(
          item,
          item.members.map((index) => messages[index]!),
          settings.summaryTokens,
        );
        if (text === undefined) break; // keep the prefix contiguous: nothing after a missing summary
        item.text = text;
        const summaryTokens = counter.text(text) + overhead;
        rest += summaryTokens - item.tokens;
        item.tokens = summaryTokens;
        folded.push(item);
      }

      // Summaries of summaries, in fixed groups from the oldest, while summaries take too much.
      // Summaries are never worth more than the room left beside the protected messages: a later
      // strategy (and the guard) must keep those, so a summary that does not fit would break the budget.
      const room = context.budget - context.fixedTokens - parts.protectedTokens;
      const shareBudget = Math.min(settings.summaryShare * context.budget, room);
      const summaryTotal = () => folded.reduce((sum, item) => sum + item.tokens, 0);
      merging: while (summaryTotal() > shareBudget) {
        const levels = [...new Set(folded.map((item) => item.level))].sort((a, b) => a - b);
        for (const level of levels) {
          // Groups are aligned runs of `groupSize` consecutive items of one level.
          let start = -1;
          for (let index = 0; index + settings.groupSize <= folded.length; index++) {
            if (folded.slice(index, index + settings.groupSize).every((item) => item.level === level)) {
              start = index;
              break;
            }
          }
          if (start < 0) continue;
          const group = folded.slice(start, start + settings.groupSize);
          const merged: Item = {
            key: keyOf([summarizer.id, String(settings.summaryTokens), `level-${level + 1}`, ...group.map((item) => item.key)]),
            first: group[0]!.first,
            members: group.flatMap((item) => item.members),
            tokens: 0,
            level: level + 1,
          };
          const source = group.map((item): ChatMessage => ({ role: 'user', content: item.text! }));
          const text = await fetchSummary(merged, source, Math.round(settings.summaryTokens * 1.5));
          if (text === undefined) break merging;
          merged.text = text;
          merged.tokens = counter.text(text) + overhead;
          folded.splice(start, group.length, merged);
          continue merging;
        }
        break;
      }
      // Past the share, the oldest summaries go (their chunks stay out, unless kept for a later strategy).
      let dropped = 0;
      while (folded.length > 0 && (summaryTotal() > room || (folded.length > 1 && summaryTotal() > shareBudget))) {
        const oldest = folded.shift()!;
        dropped++;
        if (!settings.keepSource) for (const index of oldest.members) droppedMembers.add(index);
      }

      if (folded.length === 0) return { messages, failures, info: { folded: 0, chunks: chunks.length } };
      const replaced = new Map<number, Item>();
      const skip = new Uint8Array(messages.length);
      for (const index of droppedMembers) skip[index] = 1;
      for (const item of folded) {
        replaced.set(item.first, item);
        for (const index of item.members) skip[index] = 1;
      }
      const output: ChatMessage[] = [];
      for (let index = 0; index < messages.length; index++) {
        const item = replaced.get(index);
        if (item) output.push({ role: settings.role, content: `${SUMMARY_LABEL}\n${item.text}` });
        if (!skip[index] || settings.keepSource) output.push(messages[index]!);
      }
      return {
        messages: output,
        failures,
        info: { chunks: chunks.length, summaries: folded.length, levels: 1 + Math.max(...folded.map((item) => item.level)), droppedSummaries: dropped },
      };
    },
  };
}

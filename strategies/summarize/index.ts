import { hash } from 'node:crypto';
import { withDeadline } from '../../src/core/deadline.js';
import { isAbortError } from '../../src/core/errors.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import type { BackgroundQueue, FailureRecord, Strategy, StrategyContext, StrategyResult } from '../../src/core/strategy.js';
import type { Messages } from '../../src/core/types.js';
import type { Partition } from '../../src/core/units.js';
import { stableHistory } from '../../src/core/window.js';
import { keepLatestExchange, latestExchange } from '../../src/core/nets.js';
import { extractiveSummarizer } from '../../src/summarizers/extractive.js';
import type { SummaryQueue, SummaryStore } from '../../src/summarizers/queue.js';
import type { Summarizer } from '../../src/summarizers/types.js';
import { messageKey } from '../../src/tokens/counter.js';
import type { ChatMessage } from '../../src/core/types.js';

export interface SummarizeStrategyOptions {
  /** @default extractiveSummarizer() */
  summarizer?: Summarizer;
  /**
   * How the history is cut into fixed chunks: at session headers (see `sessionHeader`) and every
   * `chunkTokens` tokens at turn boundaries, or only every `chunkTokens` tokens; `auto` uses
   * session headers when the history has them.
   * @default 'auto'
   */
  chunking?: 'auto' | 'session' | 'tokens';
  /**
   * Most tokens a chunk grows to before the next turn starts a new one. `auto`: a quarter of the
   * budget, from 100 to 1,200, so that the recent turns are dropped (and summarized) a few chunks
   * at a time.
   * @default 'auto'
   */
  chunkTokens?: number | 'auto';
  /** Marks the first message of a session. @default /^\[Session [^\]]*\]/ */
  sessionHeader?: RegExp;
  /** Length of each chunk's summary, in tokens. @default 120 */
  summaryTokens?: number;
  /**
   * Share of the budget kept for summaries. When they outgrow it, the oldest are summarized again
   * in fixed groups; if still over, the oldest summaries are dropped.
   * @default 0.25
   */
  summaryShare?: number;
  /** Summaries per group when summarizing summaries. @default 4 */
  groupSize?: number;
  /**
   * When the recent turns outgrow their room, the oldest chunks are summarized and dropped until
   * the turns fill this share of it; then they grow by appending until the room is full again
   * (see `truncate`). Between those steps, each prompt starts with the previous one's bytes.
   * @default 0.6
   */
  lowWater?: number;
  /** Share of the budget set aside for the latest turn. @default 0.1 */
  latestShare?: number;
  /** Role of summary messages. `system` keeps them from being pruned by later strategies. @default 'system' */
  role?: 'system' | 'assistant';
  /**
   * `background`: use the summaries that exist and schedule the missing ones (and those of the
   * chunks the next step will drop) for later turns: no summarizer call on the request path.
   * `inline`: wait for them up to `inlineTimeoutMs`.
   * @default 'background'
   */
  mode?: 'background' | 'inline';
  /** Milliseconds an `inline` request waits for its summaries before going on without them. @default 2000 */
  inlineTimeoutMs?: number;
  /**
   * Keep the summarized messages in the output, after their summary, for a later strategy (such
   * as relevance in the `balanced` preset) to prune; no window is kept then. Every complete chunk
   * is summarized, up to `summaryShare` of the budget.
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
  chunkTokens: 'auto' as number | 'auto',
  sessionHeader: SESSION_HEADER,
  summaryTokens: 120,
  summaryShare: 0.25,
  groupSize: 4,
  lowWater: 0.6,
  latestShare: 0.1,
  role: 'system' as const,
  mode: 'background' as const,
  inlineTimeoutMs: 2000,
  keepSource: false,
};

export const SUMMARIZE_OPTIONS = defineOptions<SummarizeStrategyOptions, typeof SUMMARIZE_DEFAULTS>({
  factory: 'summarize',
  defaults: SUMMARIZE_DEFAULTS,
  rules: {
    summarizer: {
      expected: 'a Summarizer ({ id, summarize })',
      test: (value) => typeof (value as Summarizer)?.summarize === 'function' && typeof (value as Summarizer).id === 'string',
      invalid: 42,
    },
    chunking: rules.oneOf('auto', 'session', 'tokens'),
    chunkTokens: rules.either(rules.oneOf('auto'), rules.int(50)),
    sessionHeader: { expected: 'a RegExp', test: (value) => value instanceof RegExp, invalid: null },
    summaryTokens: rules.int(10),
    summaryShare: rules.number(0, 1, { min: true, max: true }),
    groupSize: rules.int(2),
    lowWater: rules.number(0, 1, { min: true }),
    latestShare: rules.number(0, 1, { max: true }),
    role: rules.oneOf('system', 'assistant'),
    mode: rules.oneOf('background', 'inline'),
    inlineTimeoutMs: rules.int(0),
    keepSource: rules.boolean,
    store: rules.custom('a SummaryStore'),
    queue: rules.custom('a SummaryQueue'),
  },
  docs: [['strategies/summarize/index.ts', 'SummarizeStrategyOptions']],
});

/** The chunk size `chunkTokens: 'auto'` picks for a budget. */
export function chunkTokensFor(budget: number): number {
  return Math.min(1200, Math.max(100, Math.round(budget / 4)));
}

export const SUMMARY_LABEL = '[Summary of earlier conversation]';

interface Item {
  key: string;
  /** The first message index this item stands for (where its summary goes). */
  first: number;
  /** Message indices this item stands for (non-protected members of its chunks). */
  members: number[];
  tokens: number;
  level: number;
  text?: string;
}

interface Chunk {
  units: number[];
  tokens: number;
}

function keyOf(parts: readonly string[]): string {
  return hash('sha256', parts.join('\u0000'), 'base64url');
}

type Settings = Required<Omit<SummarizeStrategyOptions, 'store' | 'queue'>> & Pick<SummarizeStrategyOptions, 'store' | 'queue'>;

/**
 * Rolling, prefix-stable summaries. The history is cut into fixed chunks (sessions, and every N
 * tokens at turn boundaries); a chunk's summary is keyed by the hashes of its messages, so the same
 * chunk gives the same bytes every turn.
 *
 * The prompt is laid out as system prompt, then the summaries of the chunks dropped so far, then
 * the recent turns verbatim, then the latest turn. The recent turns grow by appending until they
 * fill their room; then the oldest chunks are dropped at once, down to `lowWater` of it, and their
 * summaries appended to the others. Those steps are derived from the history itself, so every
 * request and every instance computes the same bytes, and between steps each prompt starts with
 * the previous one's: providers bill all of it but the new turn at their cached rate. Summaries of
 * the chunks the next step will drop are made in the background ahead of it. Protected messages
 * and tool-call units are never cut.
 *
 * @example
 * pipeline('summarize', [summarize({ mode: 'background' }), truncate()])
 */
export function summarize(options: SummarizeStrategyOptions = {}): Strategy {
  const merged = SUMMARIZE_OPTIONS.parse(options);
  const settings: Settings = { ...merged, summarizer: merged.summarizer ?? extractiveSummarizer() };

  return {
    name: 'summarize',
    async apply(messages, context) {
      const parts = context.partition(messages);
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const run = new Run(settings, messages, context);
      return settings.keepSource ? run.foldInPlace() : run.stableLayout();
    },
  };
}

/** One request's work: its chunks, its summary lookups and the failures they met. */
class Run {
  readonly failures: FailureRecord[] = [];
  readonly parts: Partition;
  readonly chunks: Chunk[] = [];
  /** Per unit, its chunk (protected units: -1). */
  readonly chunkOf: Int32Array;
  readonly overhead: number;

  constructor(
    readonly settings: Settings,
    readonly messages: Messages,
    readonly context: StrategyContext,
  ) {
    const parts = context.partition(messages);
    this.parts = parts;
    this.chunkOf = new Int32Array(parts.units.length).fill(-1);
    this.overhead = context.counter.message({ role: settings.role, content: SUMMARY_LABEL }) + 2;
    // Fixed chunks over the droppable units. Boundaries depend only on what precedes them, so a
    // chunk's membership never changes as the conversation grows.
    const header = settings.sessionHeader;
    const bySession =
      settings.chunking === 'session' ||
      (settings.chunking === 'auto' && messages.some((message) => typeof message.content === 'string' && header.test(message.content)));
    const size = settings.chunkTokens === 'auto' ? chunkTokensFor(context.budget) : settings.chunkTokens;
    let current: Chunk | undefined;
    for (let unit = 0; unit < parts.units.length; unit++) {
      const entry = parts.units[unit]!;
      if (entry.protected) continue;
      const first = messages[entry.indices[0]!]!;
      const startsSession = bySession && typeof first.content === 'string' && header.test(first.content);
      const startsTurn = first.role === 'user';
      if (!current || startsSession || (startsTurn && current.tokens >= size)) {
        current = { units: [], tokens: 0 };
        this.chunks.push(current);
      }
      current.units.push(unit);
      current.tokens += entry.tokens;
      this.chunkOf[unit] = this.chunks.length - 1;
    }
  }

  get store(): SummaryStore {
    return this.settings.store ?? this.context.runtime.summaryStore;
  }

  get queue(): BackgroundQueue {
    return this.settings.queue ?? this.context.runtime.summaryQueue;
  }

  /** The item of a chunk, to summarize. */
  item(chunk: number): Item {
    const members = this.chunks[chunk]!.units.flatMap((unit) => this.parts.units[unit]!.indices).sort((a, b) => a - b);
    return {
      key: keyOf([this.settings.summarizer.id, String(this.settings.summaryTokens), ...members.map((index) => messageKey(this.messages[index]!))]),
      first: members[0]!,
      members,
      tokens: this.chunks[chunk]!.tokens,
      level: 0,
    };
  }

  sourceOf(item: Item): ChatMessage[] {
    return item.members.map((index) => this.messages[index]!);
  }

  async lookup(key: string): Promise<string | undefined | null> {
    try {
      return await this.store.get(key);
    } catch (error) {
      this.failures.push({ strategy: 'summarize', code: 'upstream.failed', message: `summary store failed: ${(error as Error).message}` });
      return null;
    }
  }

  schedule(key: string, source: readonly ChatMessage[], maxTokens: number): Promise<void> | undefined {
    const { summarizer } = this.settings;
    const counter = this.context.counter;
    const store = this.store;
    return this.queue.schedule(key, async (signal) => {
      const summary = await summarizer.summarize(source, { signal, maxTokens, countTokens: (value) => counter.text(value) });
      await store.set(key, summary);
    });
  }

  /** The item's summary: stored, or (inline) made now within the deadline; else scheduled, and undefined. */
  async summary(item: Item, source: readonly ChatMessage[], maxTokens: number): Promise<string | undefined> {
    const text = await this.lookup(item.key);
    if (text === null) return undefined;
    if (text !== undefined) return text;
    const job = this.schedule(item.key, source, maxTokens);
    if (this.settings.mode === 'background' || job === undefined) return undefined;
    try {
      await withDeadline(job, this.settings.inlineTimeoutMs, 'summary', this.context.signal);
      return (await this.lookup(item.key)) ?? undefined;
    } catch (error) {
      if (isAbortError(error) || this.context.signal?.aborted) throw error;
      this.failures.push({
        strategy: 'summarize',
        code: 'upstream.failed',
        message: `summarizer ${this.settings.summarizer.id} failed: ${(error as Error).message}`,
      });
      return undefined;
    }
  }

  /**
   * Fold the summaries down to `limit` tokens: the oldest are summarized again in fixed groups
   * (aligned runs of `groupSize` of one level, from the oldest); when that is not possible, the
   * oldest summaries are dropped. Returns how many were dropped.
   */
  async condense(folded: Item[], limit: number, hardLimit: number): Promise<number> {
    const { groupSize, summarizer, summaryTokens, role } = this.settings;
    const total = () => folded.reduce((sum, item) => sum + item.tokens, 0);
    merging: while (total() > limit) {
      const levels = [...new Set(folded.map((item) => item.level))].sort((a, b) => a - b);
      for (const level of levels) {
        let start = -1;
        for (let index = 0; index + groupSize <= folded.length; index++) {
          if (folded.slice(index, index + groupSize).every((item) => item.level === level)) {
            start = index;
            break;
          }
        }
        if (start < 0) continue;
        const group = folded.slice(start, start + groupSize);
        const merged: Item = {
          key: keyOf([summarizer.id, String(summaryTokens), `level-${level + 1}`, ...group.map((item) => item.key)]),
          first: group[0]!.first,
          members: group.flatMap((item) => item.members),
          tokens: 0,
          level: level + 1,
        };
        const source = group.map((item): ChatMessage => ({ role: 'user', content: item.text! }));
        const text = await this.summary(merged, source, Math.round(summaryTokens * 1.5));
        if (text === undefined) break merging;
        merged.text = text;
        merged.tokens = this.context.counter.message({ role, content: `${SUMMARY_LABEL}\n${text}` });
        folded.splice(start, group.length, merged);
        continue merging;
      }
      break;
    }
    let dropped = 0;
    while (folded.length > 0 && (total() > hardLimit || (folded.length > 1 && total() > limit))) {
      folded.shift();
      dropped++;
    }
    return dropped;
  }

  render(item: Item): ChatMessage {
    return { role: this.settings.role, content: `${SUMMARY_LABEL}\n${item.text}` };
  }

  /** [system] [summaries of the dropped chunks] [recent turns, cut in steps] [latest turn]. */
  async stableLayout(): Promise<StrategyResult> {
    const { settings, context, parts, messages, chunks, chunkOf } = this;
    const units = parts.units;
    const summaryRoom = Math.floor(settings.summaryShare * context.budget);
    const layout = stableHistory(messages, parts, {
      budget: context.budget,
      fixedTokens: context.fixedTokens,
      reserve: Math.ceil(settings.latestShare * context.budget) + summaryRoom,
      lowWater: settings.lowWater,
      firstTurns: 0,
      groupOf: (unit) => chunkOf[unit]!,
    });
    const keep = layout.keep;
    const startChunk = layout.start < units.length ? chunkOf[layout.start]! : chunks.length;

    // The summaries of every chunk before the window, in order, up to the first that is not ready:
    // appending a missing one later keeps the ones before it in place.
    const folded: Item[] = [];
    let missing = 0;
    for (let chunk = 0; chunk < startChunk; chunk++) {
      const item = this.item(chunk);
      if (missing === 0) {
        const text = await this.summary(item, this.sourceOf(item), settings.summaryTokens);
        if (text !== undefined) {
          item.text = text;
          item.tokens = context.counter.message(this.render(item));
          folded.push(item);
          continue;
        }
      } else if ((await this.lookup(item.key)) === undefined) this.schedule(item.key, this.sourceOf(item), settings.summaryTokens);
      missing++;
    }
    // Ahead of the next step: the chunks it would drop if it happened now are summarized in the
    // background, so that their summaries are ready when it comes.
    let scheduled = 0;
    if (settings.mode === 'background') {
      let size = 0;
      for (let unit = layout.start; unit < units.length; unit++) if (!units[unit]!.protected) size += units[unit]!.tokens;
      const room = layout.room;
      let rest = Math.max(size, room);
      for (let chunk = startChunk; chunk < chunks.length - 1 && rest > room * settings.lowWater; chunk++) {
        rest -= chunks[chunk]!.tokens;
        const item = this.item(chunk);
        if ((await this.lookup(item.key)) === undefined && this.schedule(item.key, this.sourceOf(item), settings.summaryTokens)) scheduled++;
      }
    }

    // Net first: the latest answer outranks summaries.
    let left = layout.left;
    const nets: Record<string, unknown> = {};
    const net = keepLatestExchange(messages, parts, keep, left, context.budget);
    left = net.left;
    if (net.added > 0) nets.latestAnswer = net.added;
    const dropped = await this.condense(folded, summaryRoom, Math.max(0, left));
    left -= folded.reduce((sum, item) => sum + item.tokens, 0);

    // Net: summaries not made yet (a cold process, or the conversation's first step) leave their
    // room unused; the turns before the recent ones fill it, newest first, until they are ready.
    if (missing > 0) {
      let filled = 0;
      const covered = new Set(folded.flatMap((item) => item.members));
      for (let unit = units.length - 1; unit >= 0; unit--) {
        if (keep[unit] || units[unit]!.protected || units[unit]!.tokens > left || covered.has(units[unit]!.indices[0]!)) continue;
        keep[unit] = 1;
        left -= units[unit]!.tokens;
        filled++;
      }
      if (filled > 0) nets.cold = filled;
    }

    const at = new Map<number, Item>();
    for (const item of folded) at.set(item.first, item);
    const output: ChatMessage[] = [];
    let lastSummary: ChatMessage | undefined;
    for (let index = 0; index < messages.length; index++) {
      const item = at.get(index);
      if (item) {
        lastSummary = this.render(item);
        output.push(lastSummary);
      }
      if (keep[parts.unitOf[index]!]) output.push(messages[index]!);
    }
    // Summaries sit where their chunks were: before the window, after the pinned prefix. A
    // summary placed later than a pinned message would sit inside the window's region.
    const prefixEnd = lastSummary ?? layout.prefixEnd;
    const breakpoints = [prefixEnd, layout.windowEnd].filter((message) => message !== undefined);
    const info: Record<string, unknown> = {
      chunks: chunks.length,
      summaries: folded.length,
      levels: folded.length > 0 ? 1 + Math.max(...folded.map((item) => item.level)) : 0,
      droppedSummaries: dropped,
      missing,
      scheduled,
      trimmed: layout.trimmed,
    };
    if (Object.keys(nets).length > 0) info.nets = nets;
    return { messages: output, breakpoints, failures: this.failures, info };
  }

  /**
   * For a later strategy: every complete chunk gets its summary before it, and keeps its messages
   * (the later strategy prunes them), within `summaryShare` of the budget.
   */
  async foldInPlace(): Promise<StrategyResult> {
    const { settings, context, parts, messages, chunks } = this;
    const folded: Item[] = [];
    // The newest chunk may still grow: only the ones before it are complete.
    for (let chunk = 0; chunk < chunks.length - 1; chunk++) {
      const item = this.item(chunk);
      const text = await this.summary(item, this.sourceOf(item), settings.summaryTokens);
      if (text === undefined) break; // keep the prefix contiguous: nothing after a missing summary
      item.text = text;
      item.tokens = context.counter.message(this.render(item));
      folded.push(item);
    }
    // Summaries are never worth more than the room left beside the protected messages: a later
    // strategy (and the guard) must keep those, so a summary that does not fit would break the budget.
    // The latest answer (see the nets of the strategies that follow) is kept clear of them too.
    const exchange = latestExchange(messages, parts).reduce((sum, unit) => sum + parts.units[unit]!.tokens, 0);
    const room = context.budget - context.fixedTokens - parts.protectedTokens - (exchange <= context.budget / 2 ? exchange : 0);
    const share = Math.min(settings.summaryShare * context.budget, room);
    const dropped = await this.condense(folded, share, room);
    if (folded.length === 0) return { messages, failures: this.failures, info: { folded: 0, chunks: chunks.length } };
    const at = new Map<number, Item>();
    for (const item of folded) at.set(item.first, item);
    const output: ChatMessage[] = [];
    for (let index = 0; index < messages.length; index++) {
      const item = at.get(index);
      if (item) output.push(this.render(item));
      output.push(messages[index]!);
    }
    return {
      messages: output,
      failures: this.failures,
      info: { chunks: chunks.length, summaries: folded.length, levels: 1 + Math.max(...folded.map((item) => item.level)), droppedSummaries: dropped },
    };
  }
}

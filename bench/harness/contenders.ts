import { createCompactor, type Compactor } from '../../src/compose/compactor.js';
import { fromLangChain, toLangChain } from './langchain.js';
import type { CompactorOptions } from '../../src/compose/options.js';
import type { CompactionStats } from '../../src/core/stats.js';
import { createEmbeddingCache, type EmbeddingStore } from '../../src/embedders/memo.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import type { TokenCounter } from '../../src/tokens/counter.js';
import type { ChatMessage, ChatRequest } from '../../src/core/types.js';

export interface ContenderRun {
  messages: ChatMessage[];
  ms: number;
  failures: number;
  /**
   * Set when the compactor's guard had to repair the strategy's output: the guard is a safety net,
   * so a preset that leans on it is disqualified, as if it had broken the invariant itself.
   */
  repaired?: string;
  /** Indices of the output messages after which the contender marks its stable prefix (cache breakpoints); by default the last message, as a client marks it. */
  breakpoints?: number[];
}

/** Something the bench compares: no compaction, one of our presets, or a peer. */
export interface Contender {
  readonly name: string;
  readonly kind: 'baseline' | 'preset' | 'peer';
  run(request: ChatRequest, budget: number): Promise<ContenderRun>;
  /** Dollars spent so far on the contender's own model calls (summarizer, embeddings). */
  extraCost?(): number;
  /** Lets work a server does off the request path finish, as it would while a person types the next message. */
  settle?(): Promise<void>;
  /** The same contender in a fresh process: nothing embedded, summarized or memoized yet. */
  fresh?(): Contender;
}

/** A guard repair, as a bench violation. */
export function guardProblem(stats: CompactionStats): { repaired?: string } {
  if (stats.guard.repaired === 0 && stats.guard.violation === undefined) return {};
  return { repaired: `the guard repaired the output (${stats.guard.violation ?? `${stats.guard.repaired} messages`})` };
}

export function noCompaction(): Contender {
  return { name: 'none', kind: 'baseline', run: async (request) => ({ messages: request.messages, ms: 0, failures: 0 }) };
}

/** Presets whose output depends on the model's prices: the bench replays them once per price rule. */
export const PRICE_AWARE: ReadonlySet<string> = new Set(['cache-aware']);

/**
 * Vectors the bench has computed, shared by every runtime it makes: a fresh runtime (a new process)
 * still starts with an empty memo, so what is embedded on the request path or in the background is
 * as on a server, but a text embedded in an earlier replay is read back instead of re-encoded.
 * (Timings of a later replay then leave out some encoding: latency is measured apart, in its own
 * table.)
 */
const vectors = new Map<string, Float32Array>();
const sharedVectors: EmbeddingStore = {
  getMany: async (keys) => keys.map((key) => vectors.get(key)),
  setMany: async (entries) => {
    for (const [key, value] of entries) vectors.set(key, value);
  },
};

/** A runtime of the bench's own: nothing shared with another contender but the vectors above. */
function benchRuntime(): Runtime {
  return { ...createRuntime(), embeddings: createEmbeddingCache({ store: sharedVectors }) };
}

export interface PresetContenderOptions {
  /**
   * The path a deployed server runs: default deadlines, embeddings and summaries in the
   * background, nothing awaited. Off, embeddings and summaries are awaited (the idealised path:
   * every vector available, as on a history warmed before the question).
   */
  live?: boolean;
  /** A name other than the preset's (for variants). */
  name?: string;
  /** Extra compactor options (presetOptions and the like) for variants. */
  options?: CompactorOptions;
}

/**
 * One of our presets; one compactor per budget, reused so memoized work is shared across
 * requests, all on one runtime of the contender's own (its embedding memo and summaries are its
 * own, so its timings include the work it caused). `fresh()` gives the same preset in a new
 * runtime, as a process that just started.
 */
export function presetContender(preset: string, contenderOptions: PresetContenderOptions = {}): Contender {
  const compactors = new Map<number, Compactor<false>>();
  const runtime: Runtime = benchRuntime();
  const idealised: CompactorOptions = {
    presetOptions: {
      relevance: { embedTimeoutMs: 600_000, awaitDocuments: true },
      'cache-aware': { embedTimeoutMs: 600_000, awaitDocuments: true },
      summarize: { mode: 'inline', inlineTimeoutMs: 600_000 },
    },
  };
  const extra = contenderOptions.options ?? {};
  const base = contenderOptions.live ? extra : { ...extra, presetOptions: { ...idealised.presetOptions, ...extra.presetOptions } };
  return {
    name: contenderOptions.name ?? preset,
    kind: 'preset',
    async run(request, budget) {
      let compactor = compactors.get(budget);
      if (!compactor) {
        compactor = createCompactor({ ...base, maxInputTokens: budget, strategy: preset, onBudgetUnreachable: 'pass-through', runtime });
        compactors.set(budget, compactor);
      }
      const started = performance.now();
      const { request: output, stats } = await compactor.compact(request);
      const run: ContenderRun = { messages: output.messages, ms: performance.now() - started, failures: stats.failures.length, ...guardProblem(stats) };
      if (stats.breakpoints) run.breakpoints = stats.breakpoints;
      return run;
    },
    async settle() {
      await Promise.all([runtime.embeddings.idle(), runtime.summaryQueue.idle()]);
    },
    fresh: () => presetContender(preset, contenderOptions),
  };
}

/**
 * LangChain's `trimMessages` (the real `@langchain/core`), strategy "last", keeping the system
 * prompt and starting on a human message, at the same budget and with the same memoized counter.
 */
export async function trimMessagesContender(counter: TokenCounter): Promise<Contender> {
  const { trimMessages } = await import('@langchain/core/messages');
  type Base = import('@langchain/core/messages').BaseMessage;
  const toChat = fromLangChain;
  const memo = new WeakMap<object, number>();
  const tokenCounter = (messages: Base[]): number => {
    let total = 3;
    for (const message of messages) {
      let count = memo.get(message);
      if (count === undefined) {
        count = counter.message(toChat(message));
        memo.set(message, count);
      }
      total += count;
    }
    return total;
  };
  return {
    name: 'trimMessages',
    kind: 'peer',
    async run(request, budget) {
      const input = request.messages.map(toLangChain);
      const started = performance.now();
      const trimmed = (await trimMessages(input, { maxTokens: budget, strategy: 'last', tokenCounter, includeSystem: true, startOn: 'human' })) as Base[];
      const ms = performance.now() - started;
      // Map back to the original message objects (trimMessages keeps whole messages, in order).
      const messages: ChatMessage[] = [];
      let cursor = 0;
      for (const message of trimmed) {
        const chat = toChat(message);
        const same = (original: ChatMessage) =>
          (original.role === 'developer' ? 'system' : original.role) === chat.role &&
          (typeof original.content === 'string' ? original.content : JSON.stringify(original.content ?? '')) === chat.content;
        let found = cursor;
        while (found < request.messages.length && !same(request.messages[found]!)) found++;
        if (found < request.messages.length) {
          messages.push(request.messages[found]!);
          cursor = found + 1;
        } else messages.push(chat);
      }
      return { messages, ms, failures: 0 };
    },
  };
}

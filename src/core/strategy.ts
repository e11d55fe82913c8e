import type { Embedder, EmbeddingCache } from '../embedders/types.js';
import type { ModelPrice } from '../prices.js';
import type { TokenCounter } from '../tokens/counter.js';
import { CompactorError, rethrowIfAborted, throwIfAborted } from './errors.js';
import type { ChatMessage, ChatRequest, Messages } from './types.js';
import { partition, type Partition } from './units.js';

/** Small strings by key: summaries, layout state (memory, or a Store shared by instances). */
export interface KeyValueStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

/** Background work, deduplicated by key and bounded (the summary queue). */
export interface BackgroundQueue {
  /** Runs `run` once per key in the background; undefined when the queue refused it (full or closed). */
  schedule(key: string, run: (signal: AbortSignal) => Promise<void>): Promise<void> | undefined;
}

/** What strategies use of the runtime (see `createRuntime`): the port the core defines and the runtime implements. */
export interface StrategyRuntime {
  readonly embeddings: EmbeddingCache;
  readonly summaryStore: KeyValueStore;
  readonly summaryQueue: BackgroundQueue;
  readonly layoutStore: KeyValueStore;
  defaultEmbedder(): Embedder | null;
}

/**
 * Everything impure or request-specific a strategy may use. Strategies never reach elsewhere.
 * Version `'v1'` (see `STRATEGY_SPECIFICATION_VERSION`): members may be added in a minor release,
 * never removed or changed. The object is frozen: a strategy cannot change what the next one sees.
 */
export interface StrategyContext {
  /** Token counter for the request's model (memoized per message). */
  readonly counter: TokenCounter;
  /** Budget for the whole prompt, in tokens. */
  readonly budget: number;
  /** Tokens billed outside the messages: reply priming plus tool definitions. */
  readonly fixedTokens: number;
  readonly model: string | undefined;
  /** The original (canonical) request, read-only. */
  readonly request: Readonly<ChatRequest>;
  readonly signal: AbortSignal | undefined;
  /** Milliseconds, monotonic. Injected so tests are deterministic. */
  readonly clock: () => number;
  readonly route: string | undefined;
  readonly tenant: string | undefined;
  /** The compactor's dense embedder, when one is configured (relevance strategies use it). */
  readonly embedder?: Embedder | undefined;
  /** What compactions share across requests: the embedding memo, the summary store and queue, the default encoder. */
  readonly runtime: StrategyRuntime;
  /** The request model's list price, when the price table knows it (price-aware strategies read its cache discount). */
  readonly price?: ModelPrice | undefined;
  /** Units of a message list, memoized per list object. */
  partition(messages: Messages): Partition;
}

export interface StrategyResult {
  readonly messages: Messages;
  /** Stats of nested strategies, when this strategy is a pipeline. */
  readonly steps?: readonly StrategyStats[];
  /** Failures the strategy recovered from itself (e.g. a fallback from a failing embedder). */
  readonly failures?: readonly FailureRecord[];
  /** Free-form, JSON-serialisable details for stats. */
  readonly info?: Readonly<Record<string, unknown>>;
  /**
   * Messages of the output after which the prompt's stable part ends (its cached prefix, then the
   * region that grows by appending), for providers' cache breakpoints. Without them, the compactor
   * marks the end of the history before the latest turn.
   */
  readonly breakpoints?: readonly ChatMessage[];
  /**
   * Messages of the output that stand for an input message with new content (a cleared or cut
   * tool result), each mapped to the message it replaces. The guard treats them as that message
   * (same place, same tool unit); any other new tool message is a violation it removes.
   */
  readonly rewrites?: ReadonlyMap<ChatMessage, ChatMessage>;
}

/**
 * A strategy is a small pure async unit over an immutable message list.
 *
 * @example
 * const dropImages: Strategy = {
 *   name: 'drop-images',
 *   async apply(messages) { return { messages: messages.filter((m) => typeof m.content === 'string') } },
 * }
 */
/** The version of the `Strategy` interface (and of `StrategyContext`) this release implements. */
export const STRATEGY_SPECIFICATION_VERSION = 'v1';

/**
 * A strategy: a small pure async unit over an immutable message list. Version `'v1'` of this
 * interface: `apply(messages, context)` returns the messages to send (a subset of the input,
 * rewritten messages reported in `rewrites`), and reads nothing but its options and `context`.
 */
export interface Strategy {
  /**
   * The version of this interface the strategy is written for (see `STRATEGY_SPECIFICATION_VERSION`).
   * Omitted, it is `'v1'`. A strategy declaring a version this release does not know is refused
   * when it is given to `createCompactor` or `pipeline` (`options.invalid`), never run half-understood.
   */
  readonly specificationVersion?: 'v1';
  readonly name: string;
  /**
   * Run also on requests within the budget. Only for strategies that change a request under the
   * budget when that lowers its bill (tool-result clearing): others run only when the budget forces it.
   */
  readonly withinBudget?: boolean;
  apply(messages: Messages, context: StrategyContext): Promise<StrategyResult>;
}

export interface FailureRecord {
  strategy: string;
  code: string;
  message: string;
}

export interface StrategyStats {
  name: string;
  ms: number;
  tokensBefore: number;
  tokensAfter: number;
  tokensRemoved: number;
  messagesRemoved: number;
  failures: FailureRecord[];
  info?: Readonly<Record<string, unknown>>;
  steps?: readonly StrategyStats[];
}

/** What a context is made of; `partition` and its memo are derived. */
export type StrategyContextInit = Omit<StrategyContext, 'partition'>;

/**
 * A strategy context: the compactor makes one per request, and `context-compactor/testing` makes
 * one for running a strategy directly. Partitions are memoized per message list.
 */
export function createStrategyContext(init: StrategyContextInit): StrategyContext {
  const partitions = new WeakMap<Messages, Partition>();
  const tokensOf = (message: ChatMessage) => init.counter.message(message);
  return Object.freeze({
    ...init,
    partition(messages: Messages) {
      let cached = partitions.get(messages);
      if (cached === undefined) {
        cached = partition(messages, tokensOf);
        partitions.set(messages, cached);
      }
      return cached;
    },
  });
}

export function failureOf(strategy: string, error: unknown): FailureRecord {
  if (CompactorError.isInstance(error)) return { strategy, code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { strategy, code: 'internal', message };
}

/**
 * Runs one strategy with timing and stats. A strategy that throws (other than by abort) is
 * recorded as a failure and its input passes on unchanged, so a failing step means less
 * compaction, never a broken request.
 */
export async function runStrategy(
  strategy: Strategy,
  messages: Messages,
  context: StrategyContext,
): Promise<{ messages: Messages; stats: StrategyStats; breakpoints?: readonly ChatMessage[]; rewrites?: ReadonlyMap<ChatMessage, ChatMessage> }> {
  throwIfAborted(context.signal);
  const started = context.clock();
  const tokensBefore = context.counter.messages(messages);
  let result: StrategyResult;
  const failures: FailureRecord[] = [];
  try {
    result = await strategy.apply(messages, context);
    if (result.failures) failures.push(...result.failures);
  } catch (error) {
    rethrowIfAborted(error, context.signal);
    failures.push(failureOf(strategy.name, error));
    result = { messages };
  }
  const tokensAfter = context.counter.messages(result.messages);
  const stats: StrategyStats = {
    name: strategy.name,
    ms: context.clock() - started,
    tokensBefore,
    tokensAfter,
    tokensRemoved: tokensBefore - tokensAfter,
    messagesRemoved: messages.length - result.messages.length,
    failures,
  };
  if (result.info) stats.info = result.info;
  if (result.steps) stats.steps = result.steps;
  return {
    messages: result.messages,
    stats,
    ...(result.breakpoints ? { breakpoints: result.breakpoints } : {}),
    ...(result.rewrites && result.rewrites.size > 0 ? { rewrites: result.rewrites } : {}),
  };
}

/**
 * A pipeline runs strategies in order, each on the previous one's output. It is itself a
 * strategy, so pipelines nest.
 *
 * @example
 * const strategy = pipeline('my-route', [truncate({ keepFirstUserTurns: 1 })])
 */
/** Whether `value` is a strategy this release can run: `{ name, apply }`, of a known specification version. */
export function isStrategy(value: unknown): value is Strategy {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Strategy>;
  return (
    typeof candidate.apply === 'function' &&
    typeof candidate.name === 'string' &&
    (candidate.specificationVersion === undefined || candidate.specificationVersion === STRATEGY_SPECIFICATION_VERSION)
  );
}

export function pipeline(name: string, strategies: readonly Strategy[]): Strategy {
  if (typeof name !== 'string' || name.length === 0) {
    throw new CompactorError('options.invalid', 'option "name" of pipeline must be a non-empty string', { pointer: 'name' });
  }
  strategies.forEach((strategy, index) => {
    if (!isStrategy(strategy)) {
      throw new CompactorError('options.invalid', `option "strategies[${index}]" must be a strategy ({ name, apply }, specificationVersion 'v1' or none)`, {
        pointer: `strategies[${index}]`,
      });
    }
  });
  const steps = [...strategies];
  return {
    name,
    withinBudget: steps.some((step) => step.withinBudget === true),
    async apply(messages, context) {
      let current = messages;
      const stats: StrategyStats[] = [];
      let breakpoints: readonly ChatMessage[] | undefined;
      const rewrites = new Map<ChatMessage, ChatMessage>();
      for (const step of steps) {
        // A step that acts only when the budget forces it is skipped while the request fits.
        if (step.withinBudget !== true && context.fixedTokens + context.counter.messages(current) <= context.budget) continue;
        const ran = await runStrategy(step, current, context);
        current = ran.messages;
        stats.push(ran.stats);
        // The last step that knows its layout says where it is stable.
        if (ran.breakpoints) breakpoints = ran.breakpoints;
        // A rewrite of a rewrite stands for the original message.
        for (const [made, original] of ran.rewrites ?? []) rewrites.set(made, rewrites.get(original) ?? original);
      }
      const kept = new Set(current);
      const present = breakpoints?.filter((message) => kept.has(message));
      const liveRewrites = new Map([...rewrites].filter(([made]) => kept.has(made)));
      return {
        messages: current,
        steps: stats,
        ...(present && present.length > 0 ? { breakpoints: present } : {}),
        ...(liveRewrites.size > 0 ? { rewrites: liveRewrites } : {}),
      };
    },
  };
}

/** Messages a strategy may drop, for strategies that only select. */
export function selectMessages(messages: Messages, keepIndex: Uint8Array): ChatMessage[] {
  const kept: ChatMessage[] = [];
  for (let index = 0; index < messages.length; index++) if (keepIndex[index]) kept.push(messages[index]!);
  return kept;
}

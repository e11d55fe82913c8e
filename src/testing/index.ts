/**
 * Deterministic fakes for testing your own routes and strategies.
 *
 * @example
 * import { wordTokenizer, manualClock } from 'context-compactor/testing'
 * const compactor = createCompactor({ maxInputTokens: 50, tokenizer: wordTokenizer, clock: manualClock().now })
 */
import { createCompactor } from '../compose/compactor.js';
import { createStrategyContext, type StrategyContext } from '../core/strategy.js';
import { type ModelPrice, PRICES, priceOf } from '../prices.js';
import type { ChatMessage, ChatRequest } from '../core/types.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { REPLY_PRIMING_TOKENS } from '../tokens/counter.js';
import type { TextTokenizer, TokenizerFactory } from '../tokens/tokenizer.js';
import type { Embedder } from '../embedders/types.js';

/**
 * Whether a message list has the tool structure providers check: every tool result answers an
 * earlier call, and every call is answered.
 */
export function validToolChain(messages: readonly ChatMessage[]): boolean {
  const open = new Set<string>();
  const calls = new Set<string>();
  for (const message of messages) {
    for (const call of message.tool_calls ?? []) {
      open.add(call.id);
      calls.add(call.id);
    }
    if (message.role === 'tool') {
      if (!calls.has(message.tool_call_id as string)) return false;
      open.delete(message.tool_call_id as string);
    }
  }
  return open.size === 0;
}

/** Counts whitespace-separated words: one token per word. */
export const wordTokenizer: TokenizerFactory = (encoding): TextTokenizer => ({
  encoding: `words(${encoding})`,
  count(text) {
    let count = 0;
    let inWord = false;
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      const space = code === 32 || code === 10 || code === 9 || code === 13;
      if (!space && !inWord) count++;
      inWord = !space;
    }
    return count;
  },
});

/** A clock that only moves when told to. */
export function manualClock(start = 0): { now: () => number; advance(ms: number): void } {
  let time = start;
  return {
    now: () => time,
    advance(ms) {
      time += ms;
    },
  };
}

/** Recursively freeze a value, so a test fails if anything mutates its input. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/**
 * A deterministic embedder for tests: a bag of hashed words in `dimensions` buckets, so texts
 * sharing words get similar vectors. Counts its calls.
 */
export function hashEmbedder(dimensions = 64): Embedder & { calls: number; texts: number } {
  const embedder = {
    id: `hash-${dimensions}`,
    dimensions,
    calls: 0,
    texts: 0,
    async embed(texts: readonly string[]) {
      embedder.calls++;
      embedder.texts += texts.length;
      return texts.map((text) => {
        const vector = new Float32Array(dimensions);
        for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
          let h = 2166136261;
          for (let index = 0; index < word.length; index++) h = Math.imul(h ^ word.charCodeAt(index), 16777619);
          vector[(h >>> 0) % dimensions]! += 1;
        }
        return vector;
      });
    },
  };
  return embedder;
}

export interface StrategyContextOptions {
  /** Prompt budget, in tokens. */
  budget: number;
  /** @default wordTokenizer */
  tokenizer?: TokenizerFactory;
  /** @default a fresh runtime (nothing shared with the rest of the process) */
  runtime?: Runtime;
  embedder?: Embedder;
  clock?: () => number;
  signal?: AbortSignal;
  route?: string;
  tenant?: string;
  /** The request model's price. @default the shipped price table's entry for the request's model, if any */
  price?: ModelPrice;
}

/**
 * The context the compactor would give a strategy for `request`, to run a strategy directly in a
 * test: its raw output is then what you check, not what the guard repaired.
 *
 * @example
 * const context = await strategyContext(request, { budget: 200 })
 * const { messages } = await myStrategy.apply(request.messages, context)
 */
export async function strategyContext(request: ChatRequest, options: StrategyContextOptions): Promise<StrategyContext> {
  const counter = await createCompactor({ tokenizer: options.tokenizer ?? wordTokenizer }).tokenCounter(request.model ?? 'gpt-4o');
  return createStrategyContext({
    counter,
    budget: options.budget,
    fixedTokens: REPLY_PRIMING_TOKENS + counter.tools(request),
    model: request.model,
    request,
    signal: options.signal,
    clock: options.clock ?? (() => performance.now()),
    route: options.route,
    tenant: options.tenant,
    embedder: options.embedder,
    runtime: options.runtime ?? createRuntime(),
    price: options.price ?? priceOf(PRICES, request.model),
  });
}

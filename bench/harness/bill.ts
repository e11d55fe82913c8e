import type { CacheRule, ModelPrice } from './cost.js';
import { CACHE_MIN_TOKENS, OPENAI_CACHE_INCREMENT } from './cost.js';

/**
 * What a provider bills for a conversation's requests, with its prompt cache.
 *
 * - `openai`: a prefix of at least 1,024 tokens that repeats the previous request's start is read
 *   from the cache automatically, in 128-token steps, at `cachedInput`; the rest at `input`.
 * - `anthropic`: the cache is written up to the breakpoints a request marks (`cache_control`), at
 *   `cacheWrite` (1.25 × input), and read by a later request whose prefix matches up to a written
 *   breakpoint, at `cachedInput`; tokens after the last breakpoint are billed at `input`. Written
 *   entries are taken to live through the conversation (Anthropic keeps them 5 minutes from their
 *   last use).
 * - `none`: every token at `input`.
 */
export interface BilledRequest {
  /** Prompt tokens. */
  inputTokens: number;
  /** Tokens at the start of this prompt identical to the start of the previous request's. */
  prefixTokens: number;
  /** Token offsets of the request's cache breakpoints, ascending (Anthropic's rule). */
  breakpoints: readonly number[];
  outputTokens: number;
}

export interface Bill {
  /** Dollars for the prompts. */
  prompt: number;
  /** Dollars for the outputs (compaction does not change them). */
  output: number;
  /** Prompt tokens billed at the cached rate. */
  cachedTokens: number;
  /** Prompt tokens written to the cache (Anthropic). */
  writtenTokens: number;
  promptTokens: number;
}

export const emptyBill = (): Bill => ({ prompt: 0, output: 0, cachedTokens: 0, writtenTokens: 0, promptTokens: 0 });

export function addBill(total: Bill, part: Bill): Bill {
  total.prompt += part.prompt;
  total.output += part.output;
  total.cachedTokens += part.cachedTokens;
  total.writtenTokens += part.writtenTokens;
  total.promptTokens += part.promptTokens;
  return total;
}

/** Each request's bill, for one conversation's requests in order (a request's cache depends on the ones before it). */
export function billRequests(requests: readonly BilledRequest[], price: ModelPrice, rule: CacheRule): Bill[] {
  const bills: Bill[] = [];
  // Anthropic: offsets of cache entries written so far that the current prefix still matches.
  let written: number[] = [];
  for (const request of requests) {
    const tokens = request.inputTokens;
    let cached = 0;
    let write = 0;
    if (rule === 'openai') {
      if (request.prefixTokens >= CACHE_MIN_TOKENS)
        cached = Math.min(tokens, Math.floor(request.prefixTokens / OPENAI_CACHE_INCREMENT) * OPENAI_CACHE_INCREMENT);
    } else if (rule === 'anthropic') {
      written = written.filter((offset) => offset <= request.prefixTokens);
      cached = Math.min(tokens, written.length > 0 ? Math.max(...written) : 0);
      const marks = request.breakpoints.filter((offset) => offset >= CACHE_MIN_TOKENS && offset <= tokens);
      const last = marks.length > 0 ? Math.max(...marks) : 0;
      write = Math.max(0, last - cached);
      written = [...written, ...marks];
    }
    const full = tokens - cached - write;
    const writeRate = price.cacheWrite ?? price.input * 1.25;
    bills.push({
      prompt: (cached * price.cachedInput + write * writeRate + full * price.input) / 1_000_000,
      output: (request.outputTokens * price.output) / 1_000_000,
      cachedTokens: cached,
      writtenTokens: write,
      promptTokens: tokens,
    });
  }
  return bills;
}

/** The bill for one conversation's requests, in order. */
export function billConversation(requests: readonly BilledRequest[], price: ModelPrice, rule: CacheRule): Bill {
  return billRequests(requests, price, rule).reduce(addBill, emptyBill());
}

import { readFileSync } from 'node:fs';
import { invalidOption } from '../../src/core/errors.js';
import { PRICES, priceOf, type CacheRule, type ModelPrice, type PriceTable } from '../../src/proxy/prices.js';

export type { CacheRule, ModelPrice, PriceTable };

/** Minimum cacheable prefix, and OpenAI's cache granularity beyond it. */
export const CACHE_MIN_TOKENS = 1024;
export const OPENAI_CACHE_INCREMENT = 128;

/** The shipped, dated price table (src/proxy/prices.ts), or your own JSON file (`--prices`: `{ "models": { name: price } }`). */
export function loadPrices(file?: string): PriceTable {
  if (file === undefined) return PRICES;
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { models?: PriceTable };
  const models = parsed.models;
  if (typeof models !== 'object' || models === null) invalidOption('prices', 'a JSON object with a "models" table', parsed);
  for (const [name, price] of Object.entries(models)) {
    for (const field of ['input', 'cachedInput', 'output'] as const) {
      if (typeof price[field] !== 'number' || price[field] < 0) invalidOption(`prices.models.${name}.${field}`, 'a number >= 0', price[field]);
    }
  }
  return models;
}

export function priceFor(table: PriceTable, model: string): ModelPrice {
  return priceOf(table, model) ?? invalidOption('model', `a model in the price table (${Object.keys(table).join(', ')})`, model);
}

/** Input tokens billed at the cached rate for a request sharing `prefixTokens` with the previous one. */
export function cachedTokens(prefixTokens: number, rule: CacheRule): number {
  if (rule === 'none' || prefixTokens < CACHE_MIN_TOKENS) return 0;
  if (rule === 'openai') return Math.floor(prefixTokens / OPENAI_CACHE_INCREMENT) * OPENAI_CACHE_INCREMENT;
  return prefixTokens;
}

export interface BilledRequest {
  inputTokens: number;
  /** Tokens at the start of this request identical to the previous request of the conversation. */
  prefixTokens: number;
  outputTokens: number;
}

/**
 * Dollars billed for one request.
 * - `openai`: a shared prefix of at least 1,024 tokens is cached automatically, in 128-token
 *   steps, and billed at `cachedInput`; the rest at `input`.
 * - `anthropic`: with a cache breakpoint at the end of every request, the shared prefix (at least
 *   1,024 tokens) is read at `cachedInput` and the rest is written to the cache at `cacheWrite`
 *   (default 1.25 × input); a request under the minimum is billed at `input`.
 */
export function billedCost(request: BilledRequest, price: ModelPrice, rule: CacheRule = price.cacheRule ?? 'openai'): number {
  const cached = Math.min(cachedTokens(request.prefixTokens, rule), request.inputTokens);
  let input: number;
  if (rule === 'anthropic') {
    if (request.inputTokens < CACHE_MIN_TOKENS) input = request.inputTokens * price.input;
    else input = cached * price.cachedInput + (request.inputTokens - cached) * (price.cacheWrite ?? price.input * 1.25);
  } else input = cached * price.cachedInput + (request.inputTokens - cached) * price.input;
  return (input + request.outputTokens * price.output) / 1_000_000;
}

import { readFileSync } from 'node:fs';
import { invalidOption } from '../../src/core/errors.js';
import { PRICES, priceOf, type CacheRule, type ModelPrice, type PriceTable } from '../../src/prices.js';

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

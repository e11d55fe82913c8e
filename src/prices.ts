/** Prices in US dollars per million tokens. */
export interface ModelPrice {
  input: number;
  /** Price of input tokens read from the provider's prompt cache. */
  cachedInput: number;
  /** Price of input tokens written to the cache (Anthropic-style rule only). */
  cacheWrite?: number;
  output: number;
  /** Which prompt-cache rule the provider applies. @default 'openai' */
  cacheRule?: CacheRule;
  source?: string;
  asOf?: string;
}

export type CacheRule = 'openai' | 'anthropic' | 'none';

export type PriceTable = Record<string, ModelPrice>;

const OPENAI = 'https://openai.com/api/pricing/';
const ANTHROPIC = 'https://www.anthropic.com/pricing#api';

/**
 * List prices the proxy uses for its dollars-saved metric, the price-aware preset for its cache
 * discount, and the bench for its bills, matched by the longest model-name prefix. Each entry is
 * dated: prices change, so check the source before relying on them, and pass your own table
 * (`createCompactor({ prices })`, `createProxy({ prices })`, `bench --prices FILE`).
 *
 * The cache rules: OpenAI bills a repeated prefix of at least 1,024 tokens at `cachedInput`
 * (10% of input on the gpt-5 family, 25% on gpt-4.1 and o-series, 50% on gpt-4o); Anthropic reads
 * its cache at 10% and writes it at 125% of input, up to the breakpoints a request marks.
 */
export const PRICES: PriceTable = {
  'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  o3: { input: 2, cachedInput: 0.5, output: 8, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'claude-opus-4': { input: 15, cachedInput: 1.5, cacheWrite: 18.75, output: 75, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-08' },
  'claude-sonnet-4': { input: 3, cachedInput: 0.3, cacheWrite: 3.75, output: 15, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-08' },
  'claude-haiku-4': { input: 1, cachedInput: 0.1, cacheWrite: 1.25, output: 5, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-10' },
  'claude-haiku-3-5': { input: 0.8, cachedInput: 0.08, cacheWrite: 1, output: 4, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-08' },
};

/** The price of the longest entry `model` starts with, or undefined. */
export function priceOf(table: PriceTable, model: string | undefined): ModelPrice | undefined {
  if (!model) return undefined;
  let best: string | undefined;
  for (const name of Object.keys(table)) if (model.startsWith(name) && (best === undefined || name.length > best.length)) best = name;
  return best === undefined ? undefined : table[best];
}

import { invalidOption } from './core/errors.js';
/** Prices in US dollars per million tokens. */
export interface ModelPrice {
  input: number;
  /** Price of input tokens read from the provider's prompt cache. */
  cachedInput: number;
  /**
   * Price of input tokens written to the cache: Anthropic's rule, and OpenAI's from GPT-5.6 on
   * (explicit breakpoints, writes at 1.25 × input). Unset on an `openai` rule: writes cost `input`.
   */
  cacheWrite?: number;
  output: number;
  /** Which prompt-cache rule the provider applies. @default 'openai' */
  cacheRule?: CacheRule;
  /**
   * Shortest prompt prefix the provider caches at all, in tokens: below it every token is billed at
   * `input`. @default 1024
   */
  minCachedTokens?: number;
  /**
   * The model takes explicit `prompt_cache_breakpoint` markers (OpenAI, GPT-5.6 and later); older
   * models refuse the field with a 400, so it is sent only where this is true.
   * @default false
   */
  cacheBreakpoints?: boolean;
  source?: string;
  asOf?: string;
}

export type CacheRule = 'openai' | 'anthropic' | 'none';

export type PriceTable = Record<string, ModelPrice>;

const OPENAI = 'https://developers.openai.com/api/docs/pricing';
const ANTHROPIC = 'https://platform.claude.com/docs/en/about-claude/pricing';

/**
 * List prices the proxy uses for its dollars-saved metric, the price-aware presets for their cache
 * discount and the bill test of `toolResults`, and the bench for its bills, matched by the longest
 * model-name prefix. Each entry is dated (the day its figures were last checked against the
 * source): prices change, so check the source before relying on them, and pass your own table
 * (`createCompactor({ prices })`, `createProxy({ prices })`, `bench --prices FILE`).
 *
 * The cache rules:
 * - OpenAI bills a repeated prefix of at least 1,024 tokens at `cachedInput`: 10% of input on the
 *   gpt-5 family, 25% on gpt-4.1 and o-series, 50% on gpt-4o. From GPT-5.6 on, writes are billed at
 *   1.25 × input (`cacheWrite`) and a request may mark explicit breakpoints.
 * - Anthropic reads its cache at 10% of input (5% on Opus 5.5 and Sonnet 5.5) and writes it at 125%,
 *   up to the breakpoints a request marks, and caches nothing below a per-model minimum
 *   (`minCachedTokens`: 4,096 on Opus 4.5 and 4.6 and Haiku 4.5, 2,048 on Sonnet 4.6 and Haiku 3.5).
 * - Gemini (not in this table: the `openai` rule would send it OpenAI's `prompt_cache_key`) bills
 *   a repeated prefix at 10% of input above 2,048 tokens (2.5 Flash and Pro) or 4,096 (Gemini 3);
 *   the bench models it as the `openai` rule with that minimum.
 */
export const PRICES: PriceTable = {
  'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-5.4': { input: 2.5, cachedInput: 0.25, output: 15, cacheRule: 'openai', source: OPENAI, asOf: '2026-05-25' },
  'gpt-5.4-mini': { input: 0.75, cachedInput: 0.075, output: 4.5, cacheRule: 'openai', source: OPENAI, asOf: '2026-05-25' },
  'gpt-5.4-nano': { input: 0.2, cachedInput: 0.02, output: 1.25, cacheRule: 'openai', source: OPENAI, asOf: '2026-05-25' },
  'gpt-5.5': { input: 5, cachedInput: 0.5, output: 30, cacheRule: 'openai', source: OPENAI, asOf: '2026-05-25' },
  'gpt-5.6-sol': { cacheBreakpoints: true, input: 5, cachedInput: 0.5, cacheWrite: 6.25, output: 30, cacheRule: 'openai', source: OPENAI, asOf: '2026-06-27' },
  'gpt-5.6-terra': {
    cacheBreakpoints: true,
    input: 2.5,
    cachedInput: 0.25,
    cacheWrite: 3.125,
    output: 15,
    cacheRule: 'openai',
    source: OPENAI,
    asOf: '2026-06-27',
  },
  'gpt-5.6-luna': { cacheBreakpoints: true, input: 1, cachedInput: 0.1, cacheWrite: 1.25, output: 6, cacheRule: 'openai', source: OPENAI, asOf: '2026-06-27' },
  'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  o3: { input: 2, cachedInput: 0.5, output: 8, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4, cacheRule: 'openai', source: OPENAI, asOf: '2025-08' },
  'claude-opus-4': { input: 15, cachedInput: 1.5, cacheWrite: 18.75, output: 75, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-08' },
  'claude-opus-4-5': {
    input: 5,
    cachedInput: 0.5,
    cacheWrite: 6.25,
    output: 25,
    cacheRule: 'anthropic',
    minCachedTokens: 4096,
    source: ANTHROPIC,
    asOf: '2026-12-01',
  },
  'claude-opus-4-6': {
    input: 5,
    cachedInput: 0.5,
    cacheWrite: 6.25,
    output: 25,
    cacheRule: 'anthropic',
    minCachedTokens: 4096,
    source: ANTHROPIC,
    asOf: '2026-12-01',
  },
  'claude-opus-4-7': { input: 5, cachedInput: 0.5, cacheWrite: 6.25, output: 25, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-opus-4-8': { input: 5, cachedInput: 0.5, cacheWrite: 6.25, output: 25, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-opus-5': { input: 5, cachedInput: 0.5, cacheWrite: 6.25, output: 25, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-opus-5-5': { input: 4, cachedInput: 0.2, cacheWrite: 5, output: 20, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-sonnet-4': { input: 3, cachedInput: 0.3, cacheWrite: 3.75, output: 15, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2025-08' },
  'claude-sonnet-4-6': {
    input: 3,
    cachedInput: 0.3,
    cacheWrite: 3.75,
    output: 15,
    cacheRule: 'anthropic',
    minCachedTokens: 2048,
    source: ANTHROPIC,
    asOf: '2026-12-01',
  },
  'claude-sonnet-5': { input: 2, cachedInput: 0.2, cacheWrite: 2.5, output: 10, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-sonnet-5-5': { input: 2, cachedInput: 0.1, cacheWrite: 2.5, output: 10, cacheRule: 'anthropic', source: ANTHROPIC, asOf: '2026-12-01' },
  'claude-haiku-4': {
    input: 1,
    cachedInput: 0.1,
    cacheWrite: 1.25,
    output: 5,
    cacheRule: 'anthropic',
    minCachedTokens: 4096,
    source: ANTHROPIC,
    asOf: '2026-12-01',
  },
  'claude-haiku-3-5': {
    input: 0.8,
    cachedInput: 0.08,
    cacheWrite: 1,
    output: 4,
    cacheRule: 'anthropic',
    minCachedTokens: 2048,
    source: ANTHROPIC,
    asOf: '2026-12-01',
  },
};

/**
 * A price's cache terms as shares of its input price: what a cached token costs (`cached`), what
 * writing one costs beyond a plain input token (`write`), and the shortest cached prefix.
 */
export function cacheTerms(price: ModelPrice): { cached: number; write: number; minTokens: number } {
  const cached = price.cacheRule === 'none' || price.input <= 0 ? 1 : price.cachedInput / price.input;
  const write = price.cacheWrite !== undefined && price.input > 0 ? Math.max(0, price.cacheWrite / price.input - 1) : 0;
  return { cached: Math.min(1, Math.max(0, cached)), write, minTokens: price.minCachedTokens ?? 1024 };
}

/** The price of the longest entry `model` starts with, or undefined. */
export function priceOf(table: PriceTable, model: string | undefined): ModelPrice | undefined {
  if (!model) return undefined;
  let best: string | undefined;
  for (const name of Object.keys(table)) if (model.startsWith(name) && (best === undefined || name.length > best.length)) best = name;
  return best === undefined ? undefined : table[best];
}

/** Check a `prices` option: an object of entries whose prices are numbers >= 0 and whose cache rule is known. */
export function checkPrices(prices: unknown): void {
  if (prices === undefined) return;
  if (typeof prices !== 'object' || prices === null) invalidOption('prices', 'a price table { model: { input, cachedInput, output } }', prices);
  for (const [name, price] of Object.entries(prices)) {
    for (const field of ['input', 'cachedInput', 'output'] as const) {
      const value = (price as Partial<Record<string, unknown>> | null)?.[field];
      if (typeof value !== 'number' || !(value >= 0)) invalidOption(`prices.${name}.${field}`, 'a number >= 0 (dollars per million tokens)', value);
    }
    const rule = (price as ModelPrice).cacheRule;
    if (rule !== undefined && rule !== 'openai' && rule !== 'anthropic' && rule !== 'none')
      invalidOption(`prices.${name}.cacheRule`, '"openai", "anthropic" or "none"', rule);
  }
}

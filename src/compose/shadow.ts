import { CompactorError } from '../core/errors.js';
import type { CompactionMode, CompactionStats, ShadowReport } from '../core/stats.js';
import { priceOf, type PriceTable } from '../prices.js';
import type { CompactOptions } from './types.js';

/** A call's mode: its own `mode`, else the compactor's. */
export function modeOf(options: CompactOptions, fallback: CompactionMode): CompactionMode {
  const { mode } = options;
  if (mode === undefined) return fallback;
  if (mode !== 'enforce' && mode !== 'shadow')
    throw new CompactorError('options.invalid', `option "mode" must be "enforce" or "shadow", got ${JSON.stringify(mode)}`, { pointer: 'mode' });
  return mode;
}

/**
 * Turn the stats of what enforcing did into a shadow report: the request goes as it came, so the
 * top-level figures say so, and `stats.shadow` holds what would have been sent and saved.
 * `rejected` is the error enforcing would have answered with (a budget it could not reach).
 */
export function toShadow(stats: CompactionStats, prices: PriceTable, served: boolean, rejected?: unknown): void {
  const tokensAfter = served ? 0 : rejected ? stats.tokensBefore : stats.tokensAfter;
  const report: ShadowReport = {
    tokensAfter,
    messagesAfter: served ? 0 : rejected ? stats.messagesBefore : stats.messagesAfter,
    tokensSaved: stats.tokensBefore - tokensAfter,
    strategies: stats.strategies,
  };
  const price = priceOf(prices, stats.model);
  if (price) report.dollarsSaved = Number((((stats.tokensBefore - tokensAfter) * price.input) / 1e6).toFixed(6));
  if (stats.cache) report.cache = stats.cache;
  if (rejected !== undefined) report.rejected = CompactorError.isInstance(rejected) ? rejected.code : 'internal';
  stats.shadow = report;
  stats.passThrough = 'shadow';
  stats.tokensAfter = stats.tokensBefore;
  stats.messagesAfter = stats.messagesBefore;
  stats.strategies = [];
  stats.guard = { repaired: 0, droppedForBudget: 0 };
  delete stats.reason;
  delete stats.breakpoints;
  delete stats.cache;
}

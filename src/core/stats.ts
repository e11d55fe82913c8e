import type { FormatName } from './types.js';

/** Why the response cache was not consulted for a request. */
export type BypassReason = 'header' | 'route-off' | 'tool-results' | 'no-user-message' | 'no-tenant' | 'store-failed' | 'sampled' | 'stateful';
import type { FailureRecord, StrategyStats } from './strategy.js';

/**
 * How one request may use the response cache: `read-write` looks up and stores; `write-only`
 * looks nothing up but lets the answer be stored; `none` skips the cache both ways.
 */
export type CacheAccess = 'read-write' | 'write-only' | 'none';

/** `enforce` sends the compacted request; `shadow` only reports what compaction and the cache would have done. */
export type CompactionMode = 'enforce' | 'shadow';

/** What a shadow request would have sent and saved (it was sent as it came). */
export interface ShadowReport {
  /** Prompt tokens the compacted request would have had (0 when the cache would have answered). */
  tokensAfter: number;
  messagesAfter: number;
  /** `tokensBefore − tokensAfter`. */
  tokensSaved: number;
  /**
   * Those tokens at the model's uncached input price, in US dollars (undefined for a model the
   * price table does not know). An upper bound: the provider bills a repeated prefix at its cached
   * price, which the bench's cache-aware bill accounts for and a single request cannot.
   */
  dollarsSaved?: number;
  /** What the compactor did, as it would have. */
  strategies: StrategyStats[];
  /** The cache's verdict: a `hit` is an answer that would have been served. */
  cache?: CacheVerdict;
  /** The error code enforcing would have answered with (`budget.unreachable`, say); the request went on. */
  rejected?: string;
  /**
   * True while the figures are not in: the request went on before its compaction ended
   * (`shadowWaitMs`). The same stats object holds the real figures once it does.
   */
  pending?: boolean;
}

/** The response cache stage's verdict on one request (`stats.cache`). */
export interface CacheVerdict {
  status: 'hit' | 'miss' | 'bypass';
  layer?: 'exact' | 'semantic';
  /** Why the cache was bypassed (`header`, `tool-results`, `store-failed`, `failed`…), or for a miss: `write-only` (not served from the cache), `coalesced` (waited for an identical request). */
  reason?: BypassReason | 'failed' | 'write-only' | 'coalesced';
  /** Verifier score of a semantic hit. */
  score?: number;
  /** Milliseconds the lookup took. */
  ms: number;
}

/** What one `compact()` call did. JSON-serialisable, for logs and metrics. */
export interface CompactionStats {
  model: string | undefined;
  encoding: string;
  format: FormatName;
  /** Token budget applied, or null when none could be resolved (unknown model, no maxInputTokens). */
  budget: number | null;
  tokensBefore: number;
  /** Prompt tokens sent on: 0 for a cache hit, which sends nothing. */
  tokensAfter: number;
  messagesBefore: number;
  messagesAfter: number;
  /** Milliseconds the whole call took. */
  ms: number;
  strategies: StrategyStats[];
  /** What the guard had to repair or drop. A strategy that keeps the invariants leaves `repaired` at 0. */
  guard: {
    repaired: number;
    droppedForBudget: number;
    violation?: string;
    /** Older tool results of the protected span (an agent's current turn) replaced by a placeholder, since nothing else could be dropped. */
    cleared?: number;
    /** Tool results cut to their head and tail for the same reason. */
    cut?: number;
    /** Messages of older exchanges in the protected span dropped whole (calls with their results) when clearing was not enough. */
    droppedFromCore?: number;
  };
  /** All failures recovered from: strategies' and the cache's. */
  failures: FailureRecord[];
  /**
   * Components that were still warming up (the encoder loading on a cold start), so the request
   * went on without them: the normal first seconds of a process, not a failure.
   */
  warming?: string[];
  /** Why the request went on uncompacted, when it did. */
  passThrough?: 'within-budget' | 'no-budget' | 'budget-unreachable' | 'stateful' | 'skipped' | 'shadow';
  /** Shadow mode: the request went as it came, and this is what enforcing would have done. */
  shadow?: ShadowReport;
  /**
   * Why it was compacted, when it was: `over-budget` (the budget forced it), or `cheaper` (within
   * the budget, a stage such as `tool-results` changed it because that lowers the bill under the
   * request's price rule, or cut a huge result at ingestion).
   */
  reason?: 'over-budget' | 'cheaper';
  /** The response cache's verdict, when the compactor has a cache. */
  cache?: CacheVerdict;
  /**
   * Indices of the output messages after which the prompt's stable part ends: where the provider's
   * cache breakpoints went (Anthropic), and where a bill counts the cached prefix to.
   */
  breakpoints?: number[];
}

/** The code of a strategy's record for a component that was still warming up (see `CompactionStats.warming`). */
export const WARMING = 'warming';

/** Every failure in a tree of strategy stats, depth first. */
export function failuresOf(steps: readonly StrategyStats[]): FailureRecord[] {
  const failures: FailureRecord[] = [];
  const walk = (list: readonly StrategyStats[]): void => {
    for (const step of list) {
      failures.push(...step.failures);
      if (step.steps) walk(step.steps);
    }
  };
  walk(steps);
  return failures;
}

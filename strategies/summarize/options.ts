import { defineOptions, rules } from '../../src/core/define-options.js';
import type { SummaryQueue, SummaryStore } from '../../src/summarizers/queue.js';
import type { Summarizer } from '../../src/summarizers/types.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';

export interface SummarizeStrategyOptions {
  /** @default extractiveSummarizer() */
  summarizer?: Summarizer;
  /**
   * How the history is cut into fixed chunks: at session headers (see `sessionHeader`) and every
   * `chunkTokens` tokens at turn boundaries, or only every `chunkTokens` tokens; `auto` uses
   * session headers when the history has them.
   * @default 'auto'
   */
  chunking?: 'auto' | 'session' | 'tokens';
  /**
   * Most tokens a chunk grows to before the next turn starts a new one. `auto`: a quarter of the
   * budget, from 100 to 1,200, so that the recent turns are dropped (and summarized) a few chunks
   * at a time.
   * @default 'auto'
   */
  chunkTokens?: number | 'auto';
  /** Marks the first message of a session. @default /^\[Session [^\]]*\]/ */
  sessionHeader?: RegExp;
  /** Length of each chunk's summary, in tokens. @default 120 */
  summaryTokens?: number;
  /**
   * Share of the budget kept for summaries. When they outgrow it, the oldest are summarized again
   * in fixed groups; if still over, the oldest summaries are dropped.
   * @default 0.25
   */
  summaryShare?: number;
  /** Summaries per group when summarizing summaries. @default 4 */
  groupSize?: number;
  /**
   * When the recent turns outgrow their room, the oldest chunks are summarized and dropped until
   * the turns fill this share of it; then they grow by appending until the room is full again
   * (see `truncate`). Between those steps, each prompt starts with the previous one's bytes.
   * @default 0.6
   */
  lowWater?: number;
  /** Share of the budget set aside for the latest turn. @default 0.1 */
  latestShare?: number;
  /** Role of summary messages. `system` keeps them from being pruned by later strategies. @default 'system' */
  role?: 'system' | 'assistant';
  /**
   * `background`: use the summaries that exist and schedule the missing ones (and those of the
   * chunks the next step will drop) for later turns: no summarizer call on the request path.
   * `inline`: wait for them up to `inlineTimeoutMs`.
   * @default 'background'
   */
  mode?: 'background' | 'inline';
  /** Milliseconds an `inline` request waits for its summaries before going on without them. @default 2000 */
  inlineTimeoutMs?: number;
  /**
   * Deprecated: use `summaryFold()`, the same layout as a strategy of its own. True makes
   * `summarize()` return `summaryFold()` with the same options.
   * @default false
   */
  keepSource?: boolean;
  /** Where summaries are kept. @default the runtime's (one memory store per process) */
  store?: SummaryStore;
  /** The background queue. @default the runtime's (one per process) */
  queue?: SummaryQueue;
}

export const SUMMARIZE_DEFAULTS = {
  chunking: 'auto' as const,
  chunkTokens: 'auto' as number | 'auto',
  sessionHeader: SESSION_HEADER,
  summaryTokens: 120,
  summaryShare: 0.25,
  groupSize: 4,
  lowWater: 0.6,
  latestShare: 0.1,
  role: 'system' as const,
  mode: 'background' as const,
  inlineTimeoutMs: 2000,
  keepSource: false,
};

export const SUMMARIZE_OPTIONS = defineOptions<SummarizeStrategyOptions, typeof SUMMARIZE_DEFAULTS>({
  factory: 'summarize',
  defaults: SUMMARIZE_DEFAULTS,
  rules: {
    summarizer: {
      expected: 'a Summarizer ({ id, summarize })',
      test: (value) => typeof (value as Summarizer)?.summarize === 'function' && typeof (value as Summarizer).id === 'string',
      invalid: 42,
    },
    chunking: rules.oneOf('auto', 'session', 'tokens'),
    chunkTokens: rules.either(rules.oneOf('auto'), rules.int(50)),
    sessionHeader: { expected: 'a RegExp', test: (value) => value instanceof RegExp, invalid: null },
    summaryTokens: rules.int(10),
    summaryShare: rules.number(0, 1, { min: true, max: true }),
    groupSize: rules.int(2),
    lowWater: rules.number(0, 1, { min: true }),
    latestShare: rules.number(0, 1, { max: true }),
    role: rules.oneOf('system', 'assistant'),
    mode: rules.oneOf('background', 'inline'),
    inlineTimeoutMs: rules.int(0),
    keepSource: rules.boolean,
    store: rules.custom('a SummaryStore'),
    queue: rules.custom('a SummaryQueue'),
  },
  docs: [['strategies/summarize/options.ts', 'SummarizeStrategyOptions']],
});

/** The chunk size `chunkTokens: 'auto'` picks for a budget. */
export function chunkTokensFor(budget: number): number {
  return Math.min(1200, Math.max(100, Math.round(budget / 4)));
}

export const SUMMARY_LABEL = '[Summary of earlier conversation]';

export type SummarizeSettings = Required<Omit<SummarizeStrategyOptions, 'store' | 'queue' | 'keepSource'>> & Pick<SummarizeStrategyOptions, 'store' | 'queue'>;

import { Counter, Histogram, Registry } from 'prom-client';
import type { CompactionStats } from '../core/stats.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { priceOf, type ModelPrice, type PriceTable } from '../prices.js';

/** Seconds: compaction and lookups take from well under a millisecond to a second. */
const OVERHEAD_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Counts of failed or shed background work, by component. */
export type BackgroundCounts = Partial<Record<'embedder' | 'summarizer' | 'summary-queue-full', number>>;

/** Prometheus metrics of one proxy, on its own registry (several proxies in one process never clash). */
export class ProxyMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'status'>;
  readonly tokensIn: Counter<'route'>;
  readonly tokensOut: Counter<'route'>;
  readonly tokensSaved: Counter<'route'>;
  readonly dollarsSaved: Counter<'route'>;
  readonly cache: Counter<'result'>;
  /** Shadow mode: what enforcing would have saved, and the answers the cache would have served. */
  readonly shadowTokensSaved: Counter<'route'>;
  readonly shadowDollarsSaved: Counter<'route'>;
  readonly shadowCache: Counter<'result'>;
  readonly failures: Counter<'component'>;
  readonly warming: Counter<'component'>;
  readonly strategySeconds: Histogram<'strategy'>;
  readonly overheadSeconds: Histogram<'route'>;
  readonly upstreamSeconds: Histogram<'route'>;
  private readonly prices: PriceTable;

  /**
   * @param caches the response caches whose own failure counts are exported
   * @param background counts of failed background work (embedding warm-ups, summary jobs) and of
   *   summary jobs shed by a full queue, read at each scrape
   */
  constructor(prices: PriceTable = {}, caches: () => Iterable<ResponseCache> = () => [], background: () => BackgroundCounts = () => ({})) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.prices = prices;
    this.requests = new Counter({
      name: 'context_compactor_requests_total',
      help: 'Requests handled, by route and HTTP status',
      labelNames: ['route', 'status'],
      registers,
    });
    this.tokensIn = new Counter({ name: 'context_compactor_tokens_in_total', help: 'Prompt tokens received', labelNames: ['route'], registers });
    this.tokensOut = new Counter({
      name: 'context_compactor_tokens_out_total',
      help: 'Prompt tokens sent upstream (0 for cache hits)',
      labelNames: ['route'],
      registers,
    });
    this.tokensSaved = new Counter({
      name: 'context_compactor_tokens_saved_total',
      help: 'Prompt tokens not sent upstream (compaction and cache hits)',
      labelNames: ['route'],
      registers,
    });
    this.dollarsSaved = new Counter({
      name: 'context_compactor_dollars_saved_total',
      help: 'Estimated US dollars saved at list input price, before provider prompt caching, which discounts both bills (cache hits also save the output tokens they replay); the bench bills with caching',
      labelNames: ['route'],
      registers,
    });
    this.shadowTokensSaved = new Counter({
      name: 'context_compactor_shadow_tokens_saved_total',
      help: 'Shadow mode: prompt tokens compaction and cache hits would have kept from the upstream (the requests went as they came)',
      labelNames: ['route'],
      registers,
    });
    this.shadowDollarsSaved = new Counter({
      name: 'context_compactor_shadow_dollars_saved_total',
      help: 'Shadow mode: US dollars those tokens cost at list input price (cache hits also count the output they would have replayed)',
      labelNames: ['route'],
      registers,
    });
    this.shadowCache = new Counter({
      name: 'context_compactor_shadow_cache_total',
      help: 'Shadow mode: cache lookups by result; a hit is an answer that would have been served',
      labelNames: ['result'],
      registers,
    });
    this.cache = new Counter({
      name: 'context_compactor_cache_total',
      help: 'Response cache lookups, by result (hit, miss, bypass)',
      labelNames: ['result'],
      registers,
    });
    this.failures = new Counter({
      name: 'context_compactor_failures_total',
      help: 'Failures recovered from, by component',
      labelNames: ['component'],
      registers,
    });
    this.warming = new Counter({
      name: 'context_compactor_warming_total',
      help: 'Requests that went on without a component still warming up (the encoder loading on a cold start), by component: not failures',
      labelNames: ['component'],
      registers,
    });
    this.strategySeconds = new Histogram({
      name: 'context_compactor_strategy_seconds',
      help: 'Time spent in each strategy',
      labelNames: ['strategy'],
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    this.overheadSeconds = new Histogram({
      name: 'context_compactor_overhead_seconds',
      help: 'Time the proxy adds before forwarding (parse, cache lookup, compaction)',
      labelNames: ['route'],
      buckets: OVERHEAD_BUCKETS,
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: 'context_compactor_upstream_seconds',
      help: 'Time from forwarding to the end of the upstream response',
      labelNames: ['route'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    // Counts kept elsewhere, read at each scrape.
    const collected = (name: string, help: string, read: () => Iterable<[string, number]>): void => {
      new Counter({
        name,
        help,
        labelNames: ['component'],
        registers,
        collect() {
          this.reset();
          for (const [component, count] of read()) this.inc({ component }, count);
        },
      });
    };
    // Failures the cache recovered from inside its own work (store writes after the response).
    collected('context_compactor_cache_failures_total', 'Response-cache failures by component (store, embedder), read from the caches', function* () {
      for (const cache of caches()) yield* Object.entries(cache.stats().failures);
    });
    // Work done off the request path: a failure there changes no response, so it is only visible here.
    collected(
      'context_compactor_background_failures_total',
      'Background work that failed (embedder: history embedding; summarizer: summary jobs that threw or timed out; summary-queue-full: jobs dropped because the queue was full), read from the process-wide memo and queue',
      () => Object.entries(background()).filter((entry): entry is [string, number] => entry[1] !== undefined),
    );
  }

  priceOf(model: string | undefined): ModelPrice | undefined {
    return priceOf(this.prices, model);
  }

  /** Record one compaction (and, for a hit, the answer it replayed). */
  record(route: string, stats: CompactionStats, outputTokens = 0): void {
    const shadow = stats.shadow;
    if (shadow) {
      this.shadowTokensSaved.inc({ route }, shadow.tokensSaved);
      if (shadow.dollarsSaved !== undefined) this.shadowDollarsSaved.inc({ route }, shadow.dollarsSaved);
      if (shadow.cache) this.shadowCache.inc({ result: shadow.cache.status });
    }
    const hit = stats.cache?.status === 'hit';
    const sent = hit ? 0 : stats.tokensAfter;
    this.tokensIn.inc({ route }, stats.tokensBefore);
    this.tokensOut.inc({ route }, sent);
    this.tokensSaved.inc({ route }, stats.tokensBefore - sent);
    const price = this.priceOf(stats.model);
    if (price) this.dollarsSaved.inc({ route }, ((stats.tokensBefore - sent) * price.input + (hit ? outputTokens * price.output : 0)) / 1e6);
    if (stats.cache) this.cache.inc({ result: stats.cache.status });
    for (const failure of stats.failures) this.failures.inc({ component: failure.strategy });
    for (const component of stats.warming ?? []) this.warming.inc({ component });
    const walk = (steps: readonly CompactionStats['strategies'][number][]): void => {
      for (const step of steps) {
        this.strategySeconds.observe({ strategy: step.name }, step.ms / 1000);
        if (step.steps) walk(step.steps);
      }
    };
    walk(stats.strategies);
  }
}

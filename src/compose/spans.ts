import type { CompactionStats } from '../core/stats.js';
import type { SpanAttributes } from '../core/telemetry.js';
import type { ModelPrice } from '../prices.js';

/**
 * A compaction's span attributes: OpenTelemetry's GenAI conventions where they name the figure
 * (`gen_ai.request.model`, `gen_ai.usage.input_tokens`, counted as the compactor counts), and
 * `context_compactor.*` for the rest. Documented in docs/observability.md.
 */
export function compactionAttributes(stats: CompactionStats, preset: string | undefined, price: ModelPrice | undefined): SpanAttributes {
  const hit = stats.cache?.status === 'hit';
  const sent = hit ? 0 : stats.tokensAfter;
  const attributes: SpanAttributes = {
    'gen_ai.request.model': stats.model,
    'gen_ai.usage.input_tokens': sent,
    'context_compactor.format': stats.format,
    'context_compactor.preset': preset,
    'context_compactor.strategies': stats.strategies.map((step) => step.name).join(',') || 'none',
    'context_compactor.tokens_before': stats.tokensBefore,
    'context_compactor.tokens_after': stats.tokensAfter,
    'context_compactor.pass_through': stats.passThrough,
    'context_compactor.cache.hit': stats.cache ? hit : undefined,
    'context_compactor.cache.status': stats.cache?.status,
    'context_compactor.dollars_saved': price ? Number((((stats.tokensBefore - sent) * price.input) / 1e6).toFixed(6)) : undefined,
    'context_compactor.failures': stats.failures.length,
  };
  const shadow = stats.shadow;
  if (shadow) {
    attributes['context_compactor.mode'] = 'shadow';
    attributes['context_compactor.shadow.tokens_after'] = shadow.tokensAfter;
    attributes['context_compactor.shadow.tokens_saved'] = shadow.tokensSaved;
    attributes['context_compactor.shadow.dollars_saved'] = shadow.dollarsSaved;
    attributes['context_compactor.shadow.cache.status'] = shadow.cache?.status;
  }
  return attributes;
}

import type { Strategy, StrategyContext, StrategyResult } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { latestExchange } from '../../src/core/nets.js';
import type { Chunks, Item } from './chunks.js';
import type { SummarizeSettings, SummarizeStrategyOptions } from './options.js';
import { type Summaries, summaryStrategy } from './summaries.js';

/**
 * Summaries folded in before their chunks, for a later strategy to prune (the `balanced` preset
 * puts relevance after it): every complete chunk of the history gets its summary placed before
 * it, and keeps its messages, within `summaryShare` of the budget. No window is kept. Takes
 * `summarize()`'s options; the window's (`lowWater`, `latestShare`) do not apply.
 *
 * @example
 * pipeline('balanced', [summaryFold({ summaryShare: 0.1 }), relevance({ recencyShare: 0.2 })])
 */
export function summaryFold(options: SummarizeStrategyOptions = {}): Strategy {
  return summaryStrategy(options, foldInPlace);
}

/**
 * For a later strategy: every complete chunk gets its summary before it, and keeps its messages
 * (the later strategy prunes them), within `summaryShare` of the budget.
 */
async function foldInPlace(history: Chunks, sums: Summaries, settings: SummarizeSettings, context: StrategyContext): Promise<StrategyResult> {
  const { parts, messages } = history;
  const chunks = history.list;
  const folded: Item[] = [];
  // The newest chunk may still grow: only the ones before it are complete.
  for (let chunk = 0; chunk < chunks.length - 1; chunk++) {
    const item = history.item(chunk);
    const text = await sums.summary(item, history.sourceOf(item), settings.summaryTokens);
    if (text === undefined) break; // keep the prefix contiguous: nothing after a missing summary
    item.text = text;
    item.tokens = context.counter.message(sums.render(item));
    folded.push(item);
  }
  // Summaries are never worth more than the room left beside the protected messages: a later
  // strategy (and the guard) must keep those, so a summary that does not fit would break the budget.
  // The latest answer (see the nets of the strategies that follow) is kept clear of them too.
  const exchange = latestExchange(messages, parts).reduce((sum, unit) => sum + parts.units[unit]!.tokens, 0);
  const room = context.budget - context.fixedTokens - parts.protectedTokens - (exchange <= context.budget / 2 ? exchange : 0);
  const share = Math.min(settings.summaryShare * context.budget, room);
  const dropped = await sums.condense(folded, share, room);
  if (folded.length === 0) return { messages, failures: sums.failures, info: { folded: 0, chunks: chunks.length } };
  const at = new Map<number, Item>();
  for (const item of folded) at.set(item.first, item);
  const output: ChatMessage[] = [];
  for (let index = 0; index < messages.length; index++) {
    const item = at.get(index);
    if (item) output.push(sums.render(item));
    output.push(messages[index]!);
  }
  return {
    messages: output,
    failures: sums.failures,
    info: { chunks: chunks.length, summaries: folded.length, levels: 1 + Math.max(...folded.map((item) => item.level)), droppedSummaries: dropped },
  };
}

import { withDeadline } from '../../src/core/deadline.js';
import { isAbortError } from '../../src/core/errors.js';
import type { BackgroundQueue, FailureRecord, Strategy, StrategyContext, StrategyResult } from '../../src/core/strategy.js';
import { extractiveSummarizer } from '../../src/summarizers/extractive.js';
import type { ChatMessage } from '../../src/core/types.js';
import type { SummaryStore } from '../../src/summarizers/queue.js';
import { Chunks, type Item, keyOf } from './chunks.js';
import { SUMMARIZE_OPTIONS, SUMMARY_LABEL, type SummarizeSettings, type SummarizeStrategyOptions } from './options.js';

/** One request's summaries: looked up, made (inline) or scheduled (background), condensed, and the failures they met. */
export class Summaries {
  readonly failures: FailureRecord[] = [];

  constructor(
    readonly settings: SummarizeSettings,
    readonly context: StrategyContext,
  ) {}

  get store(): SummaryStore {
    return this.settings.store ?? this.context.runtime.summaryStore;
  }

  get queue(): BackgroundQueue {
    return this.settings.queue ?? this.context.runtime.summaryQueue;
  }

  async lookup(key: string): Promise<string | undefined | null> {
    try {
      return await this.store.get(key);
    } catch (error) {
      this.failures.push({ strategy: 'summarize', code: 'upstream.failed', message: `summary store failed: ${(error as Error).message}` });
      return null;
    }
  }

  schedule(key: string, source: readonly ChatMessage[], maxTokens: number): Promise<void> | undefined {
    const { summarizer } = this.settings;
    const counter = this.context.counter;
    const store = this.store;
    return this.queue.schedule(key, async (signal) => {
      const summary = await summarizer.summarize(source, { signal, maxTokens, countTokens: (value) => counter.text(value) });
      await store.set(key, summary);
    });
  }

  /** The item's summary: stored, or (inline) made now within the deadline; else scheduled, and undefined. */
  async summary(item: Item, source: readonly ChatMessage[], maxTokens: number): Promise<string | undefined> {
    const text = await this.lookup(item.key);
    if (text === null) return undefined;
    if (text !== undefined) return text;
    const job = this.schedule(item.key, source, maxTokens);
    if (this.settings.mode === 'background' || job === undefined) return undefined;
    try {
      await withDeadline(job, this.settings.inlineTimeoutMs, 'summary', this.context.signal);
      return (await this.lookup(item.key)) ?? undefined;
    } catch (error) {
      if (isAbortError(error) || this.context.signal?.aborted) throw error;
      this.failures.push({
        strategy: 'summarize',
        code: 'upstream.failed',
        message: `summarizer ${this.settings.summarizer.id} failed: ${(error as Error).message}`,
      });
      return undefined;
    }
  }

  /**
   * Fold the summaries down to `limit` tokens: the oldest are summarized again in fixed groups
   * (aligned runs of `groupSize` of one level, from the oldest); when that is not possible, the
   * oldest summaries are dropped. Returns how many were dropped.
   */
  async condense(folded: Item[], limit: number, hardLimit: number): Promise<number> {
    const { groupSize, summarizer, summaryTokens, role } = this.settings;
    const total = () => folded.reduce((sum, item) => sum + item.tokens, 0);
    merging: while (total() > limit) {
      const levels = [...new Set(folded.map((item) => item.level))].sort((a, b) => a - b);
      for (const level of levels) {
        let start = -1;
        for (let index = 0; index + groupSize <= folded.length; index++) {
          if (folded.slice(index, index + groupSize).every((item) => item.level === level)) {
            start = index;
            break;
          }
        }
        if (start < 0) continue;
        const group = folded.slice(start, start + groupSize);
        const merged: Item = {
          key: keyOf([summarizer.id, String(summaryTokens), `level-${level + 1}`, ...group.map((item) => item.key)]),
          first: group[0]!.first,
          members: group.flatMap((item) => item.members),
          tokens: 0,
          level: level + 1,
        };
        const source = group.map((item): ChatMessage => ({ role: 'user', content: item.text! }));
        const text = await this.summary(merged, source, Math.round(summaryTokens * 1.5));
        if (text === undefined) break merging;
        merged.text = text;
        merged.tokens = this.context.counter.message({ role, content: `${SUMMARY_LABEL}\n${text}` });
        folded.splice(start, group.length, merged);
        continue merging;
      }
      break;
    }
    let dropped = 0;
    while (folded.length > 0 && (total() > hardLimit || (folded.length > 1 && total() > limit))) {
      folded.shift();
      dropped++;
    }
    return dropped;
  }

  render(item: Item): ChatMessage {
    return { role: this.settings.role, content: `${SUMMARY_LABEL}\n${item.text}` };
  }
}

/** A summarizing strategy with one layout (the window's, or the fold's): options parsed once, a no-op within the budget. */
export function summaryStrategy(
  options: SummarizeStrategyOptions,
  layout: (history: Chunks, sums: Summaries, settings: SummarizeSettings, context: StrategyContext) => Promise<StrategyResult>,
): Strategy {
  const { keepSource: _, ...rest } = SUMMARIZE_OPTIONS.parse(options);
  const settings: SummarizeSettings = { ...rest, summarizer: rest.summarizer ?? extractiveSummarizer() };
  return {
    name: 'summarize',
    async apply(messages, context) {
      const parts = context.partition(messages);
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      return layout(new Chunks(settings, messages, context), new Summaries(settings, context), settings, context);
    },
  };
}

import type { ChatMessage } from '../core/types.js';

export interface SummarizeOptions {
  signal?: AbortSignal;
  /** Upper bound on the summary's length, in tokens of `countTokens`. */
  maxTokens: number;
  /** The summary of what came before, for summarizers that continue one. */
  previousSummary?: string;
  /** Token counter for the target model; summarizers that select text use it to stay in bounds. */
  countTokens?: (text: string) => number;
}

/**
 * Turns a span of messages into text. `id` names the summarizer and its settings; it is part of
 * every summary's cache key, so changing settings never serves an old summary.
 */
export interface Summarizer {
  readonly id: string;
  summarize(messages: readonly ChatMessage[], options: SummarizeOptions): Promise<string>;
}

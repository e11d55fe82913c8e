import { defineOptions, rules } from '../core/define-options.js';
import { JSON_CLIENT_RULES } from '../http/json-client.js';
import { CompactorError } from '../core/errors.js';
import { createJsonClient, type JsonClientOptions } from '../http/json-client.js';
import { messageText } from '../text/message-text.js';
import type { Summarizer } from './types.js';

export interface LlmSummarizerOptions extends JsonClientOptions {
  /** A cheap model. @default 'gpt-4o-mini' */
  model?: string;
  /** Milliseconds per attempt. @default 30000 */
  timeoutMs?: number;
  /** Called with the usage the endpoint reports, so its cost can be counted. */
  onUsage?: (usage: { prompt_tokens: number; completion_tokens: number }) => void;
}

export const LLM_SUMMARIZER_DEFAULTS = { model: 'gpt-4o-mini', timeoutMs: 30_000 };

/** The instructions: structured bullets that keep what summaries usually lose. */
export const SUMMARY_PROMPT = [
  'You compress part of a conversation so that it can stand in for the original in later turns.',
  'Write short bullet points ("- ") and nothing else. Keep, exactly as written:',
  '- people and their names, and who said what;',
  '- numbers, dates, times, IDs, URLs, file names and amounts, verbatim;',
  '- decisions that were made;',
  "- the user's stated constraints and preferences;",
  '- open questions and unfinished tasks.',
  'Keep any session or date header as the first line. Do not add facts, opinions or advice.',
].join('\n');

/**
 * Summaries from any OpenAI-compatible chat-completions endpoint, with a timeout and retries.
 *
 * @example
 * summarize({ summarizer: llmSummarizer({ model: 'gpt-4o-mini' }) })
 */
export const LLM_SUMMARIZER_OPTIONS = defineOptions<LlmSummarizerOptions, typeof LLM_SUMMARIZER_DEFAULTS>({
  factory: 'llmSummarizer',
  defaults: LLM_SUMMARIZER_DEFAULTS,
  rules: { ...JSON_CLIENT_RULES, model: rules.string, timeoutMs: rules.int(1), onUsage: rules.function },
  docs: [
    ['src/summarizers/llm.ts', 'LlmSummarizerOptions'],
    ['src/http/json-client.ts', 'JsonClientOptions'],
  ],
});

export function llmSummarizer(options: LlmSummarizerOptions = {}): Summarizer {
  const { model, timeoutMs } = LLM_SUMMARIZER_OPTIONS.parse(options);
  const client = createJsonClient({ ...options, timeoutMs });
  return {
    id: `llm:${client.baseURL}:${model}:v1`,
    async summarize(messages, summarizeOptions) {
      const transcript = messages.map((message) => `${message.role}: ${messageText(message)}`).join('\n');
      const user = `${summarizeOptions.previousSummary ? `Summary so far:\n${summarizeOptions.previousSummary}\n\n` : ''}Conversation to summarize:\n${transcript}`;
      const json = await client.post<{ choices?: { message?: { content?: string } }[]; usage?: { prompt_tokens: number; completion_tokens: number } }>(
        '/chat/completions',
        {
          model,
          temperature: 0,
          max_tokens: summarizeOptions.maxTokens,
          messages: [
            { role: 'system', content: SUMMARY_PROMPT },
            { role: 'user', content: user },
          ],
        },
        summarizeOptions.signal,
      );
      const text = json.choices?.[0]?.message?.content;
      if (typeof text !== 'string' || text.trim().length === 0) throw new CompactorError('upstream.failed', 'summarizer endpoint returned no text');
      if (json.usage) options.onUsage?.(json.usage);
      return text.trim();
    },
  };
}

import type { ChatRequest } from '../core/types.js';
import type { ModelInfo } from '../tokens/models.js';
import type { ResolvedOptions } from './options.js';

/** Prompt tokens the model's window leaves after the reply's reserve, or null for an unknown model. */
export function resolveWindow(
  options: Pick<ResolvedOptions, 'reserveOutputTokens'>,
  info: ModelInfo | undefined,
  request: Pick<ChatRequest, 'max_tokens' | 'max_completion_tokens'>,
): number | null {
  if (!info) return null;
  const requested = request.max_completion_tokens ?? request.max_tokens;
  const reserve = typeof requested === 'number' && requested >= 0 ? requested : options.reserveOutputTokens;
  return Math.max(0, info.contextWindow - reserve);
}

/** Budget for a request: `maxInputTokens`, the model window minus the reply reserve, or the smaller. */
export function resolveBudget(
  options: Pick<ResolvedOptions, 'maxInputTokens' | 'reserveOutputTokens'>,
  info: ModelInfo | undefined,
  request: Pick<ChatRequest, 'max_tokens' | 'max_completion_tokens'>,
): number | null {
  const windowBudget = resolveWindow(options, info, request);
  if (options.maxInputTokens === undefined) return windowBudget;
  return windowBudget === null ? options.maxInputTokens : Math.min(windowBudget, options.maxInputTokens);
}

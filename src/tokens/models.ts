import type { EncodingName } from './tokenizer.js';

export interface ModelInfo {
  /** Context window in tokens (input + output). */
  contextWindow: number;
  /** Encoding used to count; omitted for models whose tokenizer is not public. */
  encoding?: EncodingName;
  /** Multiplier applied to the approximate count for models without a public tokenizer. */
  tokenMultiplier?: number;
}

/**
 * Known models, matched by longest prefix of the request's `model`. Override or extend with the
 * `models` option. Windows are the providers' published figures; check them for your model snapshot.
 */
export const KNOWN_MODELS: Readonly<Record<string, ModelInfo>> = {
  'gpt-5': { contextWindow: 400_000, encoding: 'o200k_base' },
  'gpt-4.1': { contextWindow: 1_047_576, encoding: 'o200k_base' },
  'gpt-4o': { contextWindow: 128_000, encoding: 'o200k_base' },
  'chatgpt-4o': { contextWindow: 128_000, encoding: 'o200k_base' },
  'gpt-4-turbo': { contextWindow: 128_000, encoding: 'cl100k_base' },
  'gpt-4-32k': { contextWindow: 32_768, encoding: 'cl100k_base' },
  'gpt-4': { contextWindow: 8_192, encoding: 'cl100k_base' },
  'gpt-3.5-turbo': { contextWindow: 16_385, encoding: 'cl100k_base' },
  o1: { contextWindow: 200_000, encoding: 'o200k_base' },
  o3: { contextWindow: 200_000, encoding: 'o200k_base' },
  o4: { contextWindow: 200_000, encoding: 'o200k_base' },
  'claude-': { contextWindow: 200_000 },
  'gemini-': { contextWindow: 1_048_576 },
};

export function lookupModel(model: string | undefined, table: Readonly<Record<string, ModelInfo>>): ModelInfo | undefined {
  if (!model) return undefined;
  const name = model.toLowerCase();
  let best: string | undefined;
  for (const prefix of Object.keys(table)) {
    if (name.startsWith(prefix.toLowerCase()) && (best === undefined || prefix.length > best.length)) best = prefix;
  }
  return best === undefined ? undefined : table[best];
}

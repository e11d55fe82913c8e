export { CompactorError, type CompactorErrorCode } from './errors.js';
export {
  createCompactor,
  resolveBudget,
  type Compactor,
  type CompactorOptions,
  type CompactOptions,
  type CompactionResult,
  type CompactionStats,
} from './compactor.js';
export { pipeline, runStrategy, type Strategy, type StrategyContext, type StrategyResult, type StrategyStats, type FailureRecord } from './strategy.js';
export { enforce, type GuardResult, type OnBudgetUnreachable } from './guard.js';
export { partition, type Partition, type Unit } from './units.js';
export { TokenCounter, messageKey } from './tokens/counter.js';
export { KNOWN_MODELS, lookupModel, type ModelInfo } from './tokens/models.js';
export { builtinTokenizer, type TextTokenizer, type TokenizerFactory, type TokenizerBackend, type EncodingName } from './tokens/tokenizer.js';
export { imageTokens, DEFAULT_IMAGE_TOKENS } from './tokens/images.js';
export { validateRequest, DEFAULT_LIMITS, type InputLimits } from './validate.js';
export { fromAnthropic, isAnthropicRequest, type AnthropicRequest, type AnthropicMessage } from './formats/anthropic.js';
export { createPreset, presetNames, DEFAULT_PRESET, type PresetOptions } from './presets.js';
export { createRouteTable, loadConfig, type RouteTable, type RouteRule, type RouteTableOptions } from './routes.js';
export { truncate, type TruncateOptions } from '../strategies/truncate/index.js';
export type * from './types.js';
export { relevance, defaultEmbedder, sharedEmbeddingCache, type RelevanceOptions } from '../strategies/relevance/index.js';
export { createEmbeddingCache, type EmbeddingCache, type EmbeddingCacheOptions, type EmbeddingStore } from './embedders/memo.js';
export { normalize, dot, type Embedder, type EmbedOptions } from './embedders/types.js';
export { useLite } from './embedders/use-lite.js';
export { openaiEmbedder, type OpenAIEmbedderOptions } from './embedders/openai.js';
export { transformersEmbedder, type TransformersEmbedderOptions } from './embedders/transformers.js';
export { buildGloveModel, type GloveModelOptions } from './embedders/glove-model.js';
export { bm25Scores } from './text/bm25.js';
export { summarize, sharedSummaries, SUMMARY_LABEL, type SummarizeStrategyOptions } from '../strategies/summarize/index.js';
export { extractiveSummarizer, type ExtractiveOptions } from './summarizers/extractive.js';
export { llmSummarizer, SUMMARY_PROMPT, type LlmSummarizerOptions } from './summarizers/llm.js';
export { SummaryQueue, memorySummaryStore, type SummaryStore, type SummaryQueueOptions, type QueueStats } from './summarizers/queue.js';
export type { Summarizer, SummarizeOptions } from './summarizers/types.js';

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
export { dotMany } from './embedders/dot-many.js';
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
export {
  createResponseCache,
  replay,
  uncacheableReason,
  type ResponseCache,
  type ResponseCacheOptions,
  type RouteCacheOptions,
  type CachedResponse,
  type CacheLookup,
  type CacheLookupOptions,
  type CacheStats,
  type CacheTicket,
  type BypassReason,
} from './cache/response-cache.js';
export { defaultVerifier, cosineVerifier, logisticVerifier, DEFAULT_VERIFIER_THRESHOLD, type Verifier, type LogisticModel } from './cache/verifier.js';
export { assembleChatCompletion, chatCompletionChunks, encodeSse, sseCollector, type SseEvent } from './cache/sse.js';
export { readPairs, splitByQuestion, type LabelledPair, type PairLabel } from './cache/pairs.js';
export { semanticCache } from '../strategies/semantic-cache/index.js';
export { memoryStore, type MemoryStoreOptions } from './stores/memory.js';
export { redisStore, type RedisStoreOptions } from './stores/redis.js';
export { embeddingStore, summaryStore } from './stores/views.js';
export type { Store, VectorMatch } from './stores/types.js';
export type { CacheOutcome } from './compactor.js';

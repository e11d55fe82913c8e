import { CompactorError, invalidOption } from '../errors.js';
import type { Embedder } from './types.js';

export interface OpenAIEmbedderOptions {
  /**
   * Base URL of an OpenAI-compatible API.
   * @default 'https://api.openai.com/v1'
   */
  baseURL?: string;
  /** API key, sent as a Bearer token. @default process.env.OPENAI_API_KEY */
  apiKey?: string;
  /** @default 'text-embedding-3-small' */
  model?: string;
  /** Requested dimensions (models that support it). */
  dimensions?: number;
  /** Texts per request. @default 128 */
  batchSize?: number;
  /** Milliseconds per attempt. @default 10000 */
  timeoutMs?: number;
  /** Retries after a network error, a timeout, 429 or 5xx, with exponential backoff. @default 2 */
  retries?: number;
  /** Injected fetch, for tests. @default globalThis.fetch */
  fetch?: typeof fetch;
}

const RETRYABLE = new Set([408, 409, 429, 500, 502, 503, 504]);

/**
 * Any OpenAI-compatible `/v1/embeddings` endpoint, batched, with a timeout and retries.
 *
 * @example
 * const embedder = openaiEmbedder({ baseURL: 'http://localhost:8080/v1', model: 'bge-small' })
 */
export function openaiEmbedder(options: OpenAIEmbedderOptions = {}): Embedder {
  const baseURL = (options.baseURL ?? 'https://api.openai.com/v1').replace(/\/+$/, '');
  const model = options.model ?? 'text-embedding-3-small';
  const batchSize = options.batchSize ?? 128;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 2;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  try {
    new URL(baseURL);
  } catch {
    invalidOption('baseURL', 'an absolute URL', options.baseURL);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 2048) invalidOption('batchSize', 'an integer from 1 to 2048', batchSize);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) invalidOption('timeoutMs', 'an integer >= 1', timeoutMs);
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) invalidOption('retries', 'an integer from 0 to 10', retries);
  if (options.dimensions !== undefined && (!Number.isInteger(options.dimensions) || options.dimensions < 1)) invalidOption('dimensions', 'an integer >= 1', options.dimensions);
  const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY;
  let dimensions = options.dimensions ?? 0;

  async function request(input: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
      const timeout = AbortSignal.timeout(timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        const body: Record<string, unknown> = { model, input, encoding_format: 'float' };
        if (options.dimensions !== undefined) body.dimensions = options.dimensions;
        const response = await fetchImpl(`${baseURL}/embeddings`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
          body: JSON.stringify(body),
          signal: combined,
        });
        if (!response.ok) {
          lastError = new CompactorError('upstream.failed', `embeddings endpoint answered ${response.status}`, { details: { status: response.status } });
          await response.body?.cancel();
          if (RETRYABLE.has(response.status)) continue;
          throw lastError;
        }
        const json = (await response.json()) as { data?: { embedding: number[]; index: number }[] };
        if (!Array.isArray(json.data) || json.data.length !== input.length) {
          throw new CompactorError('upstream.failed', 'embeddings endpoint returned a malformed body');
        }
        const vectors: Float32Array[] = new Array(input.length);
        for (const item of json.data) vectors[item.index] = Float32Array.from(item.embedding);
        if (vectors.some((vector) => vector === undefined)) throw new CompactorError('upstream.failed', 'embeddings endpoint skipped an index');
        return vectors;
      } catch (error) {
        if (signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });
        if (CompactorError.isInstance(error) && error.details?.status !== undefined && !RETRYABLE.has(error.details.status as number)) throw error;
        if (CompactorError.isInstance(error) && error.message.includes('malformed')) throw error;
        lastError = error;
      }
    }
    throw CompactorError.isInstance(lastError)
      ? lastError
      : new CompactorError('upstream.failed', `embeddings endpoint failed: ${(lastError as Error)?.message ?? lastError}`, { cause: lastError });
  }

  return {
    id: `openai:${baseURL}:${model}${options.dimensions ? `:${options.dimensions}` : ''}`,
    get dimensions() {
      return dimensions;
    },
    async embed(texts, embedOptions = {}) {
      const out: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += batchSize) {
        out.push(...(await request(texts.slice(start, start + batchSize), embedOptions.signal)));
      }
      if (out[0]) dimensions = out[0].length;
      return out;
    },
  };
}

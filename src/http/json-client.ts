import { type Rule, rules } from '../core/define-options.js';
import { CompactorError, invalidOption } from '../core/errors.js';

/** Connection options shared by the OpenAI-compatible providers. */
export interface JsonClientOptions {
  /** Base URL of an OpenAI-compatible API. @default 'https://api.openai.com/v1' */
  baseURL?: string;
  /** Sent as a Bearer token. @default process.env.OPENAI_API_KEY */
  apiKey?: string;
  /** Milliseconds per attempt (each provider documents its own default). */
  timeoutMs?: number;
  /** Retries after a network error, a timeout, 408/409/429 or 5xx, with exponential backoff. @default 2 */
  retries?: number;
  /** Injected fetch, for tests. @default globalThis.fetch */
  fetch?: typeof fetch;
}

export interface JsonClient {
  readonly baseURL: string;
  /** POST a JSON body to `baseURL + path`; resolves to the parsed JSON answer. */
  post<T>(path: string, body: unknown, signal: AbortSignal | undefined): Promise<T>;
}

const RETRYABLE = new Set([408, 409, 429, 500, 502, 503, 504]);

class HttpStatusError extends CompactorError {
  constructor(readonly httpStatus: number) {
    super('upstream.failed', `endpoint answered ${httpStatus}`, { details: { status: httpStatus } });
  }
}

export const JSON_CLIENT_DEFAULTS = { baseURL: 'https://api.openai.com/v1', retries: 2 };

/** The rules of the connection options, shared by every factory that calls an HTTP API. */
export const JSON_CLIENT_RULES = {
  baseURL: rules.string,
  apiKey: rules.string,
  timeoutMs: rules.int(1),
  retries: rules.int(0, 10),
  fetch: rules.function,
} satisfies Record<keyof Required<JsonClientOptions>, Rule>;

/** Validates the connection options once and returns a client with timeouts and retries. */
export function createJsonClient(options: JsonClientOptions & { timeoutMs: number }): JsonClient {
  const baseURL = (options.baseURL ?? JSON_CLIENT_DEFAULTS.baseURL).replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs;
  const retries = options.retries ?? JSON_CLIENT_DEFAULTS.retries;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  try {
    new URL(baseURL);
  } catch {
    invalidOption('baseURL', 'an absolute URL', options.baseURL);
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) invalidOption('timeoutMs', 'an integer >= 1', timeoutMs);
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) invalidOption('retries', 'an integer from 0 to 10', retries);
  const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY;
  const aborted = (signal: AbortSignal) => new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });

  return {
    baseURL,
    async post<T>(path: string, body: unknown, signal: AbortSignal | undefined): Promise<T> {
      const payload = JSON.stringify(body);
      let lastError: unknown;
      for (let attempt = 0; attempt <= retries; attempt++) {
        if (signal?.aborted) throw aborted(signal);
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
        const timeout = AbortSignal.timeout(timeoutMs);
        try {
          const response = await fetchImpl(`${baseURL}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
            body: payload,
            signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
          });
          if (!response.ok) {
            await response.body?.cancel();
            throw new HttpStatusError(response.status);
          }
          return (await response.json()) as T;
        } catch (error) {
          if (signal?.aborted) throw aborted(signal);
          if (error instanceof HttpStatusError && !RETRYABLE.has(error.httpStatus)) throw error;
          lastError = error;
        }
      }
      throw CompactorError.isInstance(lastError)
        ? lastError
        : new CompactorError('upstream.failed', `${baseURL}${path} failed: ${(lastError as Error)?.message ?? String(lastError)}`, { cause: lastError });
    },
  };
}

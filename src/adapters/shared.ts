import { CompactorError } from '../errors.js';
import type { Compactor } from '../compactor.js';
import { isRouteTable, type RouteTable } from '../routes.js';

/** OpenAI-style error body. */
export interface ErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

/** Render any error as an OpenAI-style error body and status. Internal details stay hidden. */
export function toErrorBody(error: unknown): { status: number; body: ErrorBody } {
  if (CompactorError.isInstance(error)) {
    const type = error.status < 500 ? 'invalid_request_error' : 'server_error';
    return {
      status: error.status,
      body: { error: { message: error.expose ? error.message : 'internal error', type, code: error.code, param: error.pointer ?? null } },
    };
  }
  // body-parser's errors carry a `type` and a `status`.
  const parserType = (error as { type?: unknown } | null)?.type;
  if (parserType === 'entity.too.large') {
    return { status: 413, body: { error: { message: 'request body is too large', type: 'invalid_request_error', code: 'input.too-large', param: null } } };
  }
  if (parserType === 'entity.parse.failed') {
    return { status: 400, body: { error: { message: 'request body is not valid JSON', type: 'invalid_request_error', code: 'input.invalid', param: 'body' } } };
  }
  return { status: 500, body: { error: { message: 'internal error', type: 'server_error', code: 'internal', param: null } } };
}

export function selectCompactor(source: Compactor | RouteTable, path: string | undefined, body: unknown): Compactor {
  if (!isRouteTable(source)) return source;
  const model = typeof (body as { model?: unknown } | null)?.model === 'string' ? ((body as { model: string }).model) : undefined;
  return source.select({ path, model });
}

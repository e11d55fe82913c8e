import { createCompactor, type CompactionStats, type Compactor, type CompactOptions, type CompactorOptions } from '../compactor.js';
import { isRouteTable, type RouteTable } from '../routes.js';
import { selectCompactor, toErrorBody } from './shared.js';

// Structural types, so the adapter needs neither express nor @types/express at run time.
interface ExpressRequest {
  method: string;
  body?: unknown;
  path?: string;
  baseUrl?: string;
  originalUrl?: string;
}
interface ExpressResponse {
  locals: Record<string, unknown>;
  writableEnded?: boolean;
  headersSent?: boolean;
  on(event: 'close', listener: () => void): unknown;
  status(code: number): ExpressResponse;
  json(body: unknown): unknown;
  setHeader?(name: string, value: string): unknown;
}
type Next = (error?: unknown) => void;

export interface ExpressCompactionOptions<Req extends ExpressRequest = ExpressRequest> {
  /** Resolve the tenant of a request (a header, an API-key hash, a user id). */
  tenant?: (request: Req) => string | undefined;
  /**
   * The route name used to pick from a route table and passed to strategies.
   * @default request.baseUrl + request.path
   */
  route?: (request: Req) => string;
  /** @default 'auto' */
  format?: CompactOptions['format'];
  /**
   * Set `x-compactor-tokens-before` / `-after` / `-strategy` response headers.
   * @default false
   */
  headers?: boolean;
}

/**
 * Express middleware: mount after `express.json()`. It replaces `req.body` with the compacted
 * request, puts the stats on `res.locals.compaction`, and reports errors only through `next(err)`.
 *
 * @example
 * app.post('/v1/chat/completions', express.json(), compaction({ maxInputTokens: 4000 }), handler)
 * app.use(compactionErrorHandler())
 */
export function compaction<Req extends ExpressRequest = ExpressRequest>(
  source: Compactor | RouteTable | CompactorOptions,
  options: ExpressCompactionOptions<Req> = {},
): (request: Req, response: ExpressResponse, next: Next) => void {
  const target: Compactor | RouteTable =
    isRouteTable(source) || typeof (source as Compactor).compact === 'function' ? (source as Compactor | RouteTable) : createCompactor(source as CompactorOptions);
  return (request, response, next) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') {
      next();
      return;
    }
    const route = options.route ? options.route(request) : `${request.baseUrl ?? ''}${request.path ?? ''}`;
    const controller = new AbortController();
    const onClose = (): void => {
      if (!response.writableEnded) controller.abort();
    };
    response.on('close', onClose);
    let compactor: Compactor;
    try {
      compactor = selectCompactor(target, route, request.body);
    } catch (error) {
      next(error);
      return;
    }
    const tenant = options.tenant?.(request);
    compactor
      .compact((request.body ?? undefined) as object, { signal: controller.signal, route, tenant, format: options.format ?? 'auto' })
      .then(
        ({ request: compacted, stats }) => {
          request.body = compacted;
          response.locals.compaction = stats;
          if (options.headers && response.setHeader && !response.headersSent) {
            response.setHeader('x-compactor-tokens-before', String(stats.tokensBefore));
            response.setHeader('x-compactor-tokens-after', String(stats.tokensAfter));
            response.setHeader('x-compactor-strategy', stats.strategies.map((step) => step.name).join(',') || 'none');
          }
          next();
        },
        (error: unknown) => next(error),
      );
  };
}

/**
 * Error handler rendering OpenAI-style error JSON for compactor errors and body-parser errors.
 * Other errors become a 500 with no detail.
 *
 * @example
 * app.use(compactionErrorHandler())
 */
export function compactionErrorHandler(): (error: unknown, request: ExpressRequest, response: ExpressResponse, next: Next) => void {
  return (error, _request, response, next) => {
    if (response.headersSent) {
      next(error);
      return;
    }
    const { status, body } = toErrorBody(error);
    response.status(status).json(body);
  };
}

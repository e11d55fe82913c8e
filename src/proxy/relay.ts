import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { asCompactorError, errorReply, exchange, type ExchangeResult } from '../adapters/exchange.js';
import type { RouteTable } from '../compose/routes.js';
import { CompactorError } from '../core/errors.js';
import { endSpan, type SpanHandle, SpanKind, startSpan, withSpan } from '../core/telemetry.js';
import { compactionAttributes } from '../compose/spans.js';
import type { CompactionStats } from '../core/stats.js';
import { FORMATS } from '../formats/registry.js';
import type { FormatName } from '../formats/wire-format.js';
import type { Access, Caller, CredentialCheck } from './auth.js';
import { abortOnClientClose, decodedBody, declaredLength, header, readBodyWithin, retryAfter, send, type semaphore, writeChunk } from './io.js';
import type { ProxyMetrics } from './metrics.js';
import type { ProxySettings } from './options.js';
import { type Provider, targetOf } from './router.js';
import type { createUpstream, UpstreamResponse } from './upstream.js';

/** What the relay shares with the server that mounts it. */
export interface RelayDeps {
  settings: ProxySettings;
  table: RouteTable;
  access: Access;
  accepted: CredentialCheck;
  heavy: ReturnType<typeof semaphore>;
  metrics: ProxyMetrics;
  logger: Logger;
  upstream: ReturnType<typeof createUpstream>;
}

/** The proxy's three answers to a routed request: compact and relay, relay untouched, or refuse. */
export function createRelay({ settings, table, access, accepted, heavy, metrics, logger, upstream }: RelayDeps) {
  /** The metrics label of a compacted request: its route rule's name, else its endpoint's. */
  const labelOf = (endpoint: string, path: string, stats: CompactionStats | undefined): string =>
    (stats && table.nameOf?.({ path, model: stats.model })) || endpoint;

  /** A compacted endpoint: authentication, cache, compaction, then the upstream. */
  async function handleCompletion(
    request: IncomingMessage,
    response: ServerResponse,
    provider: Provider,
    path: string,
    search: string,
    endpoint: string,
    caller: Caller,
    hops: string,
  ): Promise<void> {
    const started = performance.now();
    const system = provider.format === 'anthropic' ? 'anthropic' : 'openai';
    const span = startSpan('context-compactor.request', SpanKind.SERVER, {
      'http.request.method': request.method,
      'url.path': path,
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': system,
    });
    let upstreamSpan: SpanHandle | undefined;
    // A shadow request sent before its compaction ended: its figures, once it has.
    let settled: Promise<CompactionStats> | undefined;
    const abort = abortOnClientClose(response);
    let route = endpoint;
    let upstreamStarted = 0;
    const declared = declaredLength(request);
    // Cached answers go to a caller the proxy vouched for (a proxy key), or whose own key the upstream accepted lately.
    const vouched = caller.keyTenant !== undefined || caller.credential === undefined;
    // Asked now, answered by the time the body is read (a shared store takes a round trip).
    const fresh = vouched ? Promise.resolve(true) : accepted.isFresh(caller.credential!);
    let result: ExchangeResult<UpstreamResponse>;
    let release: () => void = () => undefined;
    try {
      // The body is read in full (within bodyTimeoutMs) before any shared slot is taken: a slow or
      // stalled upload holds nothing but its own connection.
      const bytes = decodedBody(
        await readBodyWithin(request, settings.maxBodyBytes, declared, settings.bodyTimeoutMs, abort.signal),
        header(request, 'content-encoding'),
        settings.maxBodyBytes,
      );
      // A heavy body waits its turn to be parsed and compacted, so a few large requests cannot hold the event loop for everyone.
      if (bytes.byteLength > settings.heavyBodyBytes) release = await heavy.acquire(abort.signal);
      const cacheAccess = (await fresh) ? 'read-write' : 'write-only';
      result = await withSpan(span, () =>
        exchange(
          {
            body: [bytes],
            contentLength: bytes.byteLength,
            maxBodyBytes: settings.maxBodyBytes,
            compactor: table,
            format: provider.format,
            route: path,
            tenant: (body) => access.tenant(caller, request, body),
            cacheAccess,
            skipCompaction: caller.skipCompaction,
            ...(caller.mode ? { mode: caller.mode } : {}),
            cacheHints: provider.cacheHints,
            signal: abort.signal,
            header: (name) => header(request, name),
            headers: true,
            clock: settings.clock ?? Date.now,
          },
          async (body, prepared) => {
            release();
            settled = prepared.settled;
            route = labelOf(endpoint, path, prepared.stats);
            // A shadow request sent before its compaction ended is charged and counted when it ends.
            await caller.reserve(prepared.settled ? 0 : prepared.stats.tokensAfter);
            metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
            if (!prepared.settled) metrics.record(route, prepared.stats);
            if (settings.logContent) logger.debug({ route, messages: (prepared.request as { messages?: unknown }).messages }, 'compacted request');
            upstreamStarted = performance.now();
            upstreamSpan = startSpan(`chat ${prepared.stats.model ?? ''}`.trim(), SpanKind.CLIENT, {
              'gen_ai.operation.name': 'chat',
              'gen_ai.provider.name': system,
              'gen_ai.request.model': prepared.stats.model,
              ...(prepared.settled ? {} : { 'gen_ai.usage.input_tokens': prepared.stats.tokensAfter }),
            });
            return upstream.send(request, targetOf(provider, path, search, caller, hops, true), body, abort).then((answer) => {
              if (caller.credential) accepted.observe(caller.credential, answer.status);
              return answer;
            });
          },
        ),
      );
    } catch (error) {
      const failure = asCompactorError(error);
      result = { kind: 'reply', reply: errorReply(failure, provider.format, failure.code === 'input.timeout' ? { connection: 'close' } : {}), error: failure };
    } finally {
      release();
    }
    route = labelOf(endpoint, path, result.stats);
    let status: number;
    let failure: CompactorError | undefined;
    if (result.kind === 'reply') {
      failure = result.error;
      // Whatever of the body is left unread (an early 413) must not hold the connection.
      if (!request.readableEnded) request.resume();
      if (failure?.code === 'aborted') {
        status = 499;
        response.destroy();
      } else {
        status = result.reply.status;
        send(response, result.reply, failure ? retryAfter(failure) : {});
        if (!failure && result.stats) {
          metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
          metrics.record(route, result.stats, result.replay?.kind === 'json' ? FORMATS[provider.format].outputTokens(result.replay.body) : 0);
        }
      }
    } else {
      status = result.upstream.status;
      try {
        response.writeHead(status, { ...result.upstream.headers, ...result.headers });
        response.flushHeaders();
        for await (const chunk of result.body ?? []) {
          await writeChunk(response, chunk);
          if (response.destroyed) throw new CompactorError('aborted', 'the client went away');
        }
        response.end();
      } catch (error) {
        // Half-way through, the status is sent: the only honest signal left is a broken stream.
        response.destroy();
        failure = CompactorError.isInstance(error) ? error : new CompactorError('upstream.failed', (error as Error).message, { cause: error });
        if (failure.code === 'aborted') status = 499;
      }
      metrics.upstreamSeconds.observe({ route }, (performance.now() - upstreamStarted) / 1000);
      endSpan(upstreamSpan, { 'http.response.status_code': status }, failure ?? (status >= 500 ? `upstream answered ${status}` : undefined));
      upstreamSpan = undefined;
      // Passed through as is, but still the upstream failing: counted like a timeout.
      if (status >= 500 && !failure) metrics.failures.inc({ component: 'upstream' });
    }
    if (failure && (failure.code === 'upstream.failed' || failure.code === 'upstream.timeout')) metrics.failures.inc({ component: 'upstream' });
    if (failure) {
      const log = { route, status, code: failure.code, message: failure.message };
      if (status >= 500 && status !== 499) logger.error(log, 'request failed');
      else logger.info(log, 'request rejected');
    }
    metrics.requests.inc({ route, status: String(status) });
    if (settled) {
      // The answer is sent (or the upstream failed); the figures of its shadow compaction are in once it ends.
      const late = await settled;
      metrics.record(route, late);
      caller.reserve(late.tokensAfter).catch(() => undefined);
    }
    const stats = result.stats;
    // An upstream that threw before answering leaves its span open: it ends with the request.
    endSpan(upstreamSpan, undefined, failure);
    endSpan(
      span,
      {
        ...(stats ? compactionAttributes(stats, undefined, metrics.priceOf(stats.model)) : {}),
        'context_compactor.route': route,
        'http.response.status_code': status,
      },
      failure && status >= 500 && status !== 499 ? failure : undefined,
    );
    logger.info(
      {
        route,
        status,
        model: stats?.model,
        tokensBefore: stats?.tokensBefore,
        tokensAfter: stats?.tokensAfter,
        cache: stats?.cache?.status,
        ...(stats?.shadow
          ? {
              shadow: {
                tokensAfter: stats.shadow.tokensAfter,
                tokensSaved: stats.shadow.tokensSaved,
                dollarsSaved: stats.shadow.dollarsSaved,
                cache: stats.shadow.cache?.status,
              },
            }
          : {}),
        failures: stats?.failures.length,
        ms: Math.round(performance.now() - started),
      },
      'request',
    );
  }

  /** A path on the pass-through list: relayed untouched to the provider it belongs to. */
  async function handlePassThrough(
    request: IncomingMessage,
    response: ServerResponse,
    provider: Provider,
    path: string,
    search: string,
    caller: Caller,
    hops: string,
  ): Promise<void> {
    const abort = abortOnClientClose(response);
    let status = 500;
    try {
      const body =
        request.method === 'GET' || request.method === 'HEAD'
          ? null
          : await readBodyWithin(request, settings.maxBodyBytes, declaredLength(request), settings.bodyTimeoutMs, abort.signal);
      const answer = await upstream.send(request, targetOf(provider, path, search, caller, hops), body, abort);
      status = answer.status;
      response.writeHead(status, answer.headers);
      response.flushHeaders();
      for await (const chunk of answer.body ?? []) await writeChunk(response, chunk);
      response.end();
    } catch (error) {
      if (CompactorError.isInstance(error) && error.code === 'aborted') {
        response.destroy();
        return;
      }
      if (!request.readableEnded) request.resume();
      const reply = errorReply(error, provider.format);
      status = reply.status;
      send(response, reply);
    } finally {
      metrics.requests.inc({ route: 'passthrough', status: String(status) });
    }
  }

  /** Answer with an error before the body is read (the rest of it is discarded). */
  function refuse(request: IncomingMessage, response: ServerResponse, error: CompactorError, format: FormatName, label: string): void {
    const extra = retryAfter(error);
    if (error.code === 'unavailable') extra.connection = 'close';
    request.resume();
    send(response, errorReply(error, format), extra);
    metrics.requests.inc({ route: label, status: String(error.status) });
    if (error.code !== 'unavailable') logger.info({ route: label, status: error.status, code: error.code, message: error.message }, 'request rejected');
  }

  return { handleCompletion, handlePassThrough, refuse };
}

import { createRequire } from 'node:module';

/**
 * OpenTelemetry tracing through the optional peer `@opentelemetry/api`. Without the package, or
 * with it but no tracer provider registered, every helper here is one function call that does
 * nothing: no span objects, no attributes built. Types are declared here, structurally, so the
 * package's own types need not be installed.
 */

/** The attribute values spans carry. */
export type SpanAttributes = Record<string, string | number | boolean | undefined>;

/** The part of an OpenTelemetry span the project uses. */
export interface SpanHandle {
  setAttributes(attributes: SpanAttributes): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: Error | string): unknown;
  end(): void;
}

interface TracerLike {
  startSpan(name: string, options: { kind?: number; attributes?: SpanAttributes }, context?: unknown): SpanHandle;
}
interface Api {
  trace: {
    getTracerProvider(): { getTracer(name: string, version?: string): TracerLike; getDelegateTracer?(name: string, version?: string): TracerLike | undefined };
    setSpan(context: unknown, span: SpanHandle): unknown;
  };
  context: { active(): unknown; with<T>(context: unknown, fn: () => T): T };
}

/** Span kinds, as the API numbers them. */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2 } as const;
const ERROR = 2;
const NAME = 'context-compactor';

let api: Api | null | undefined;
function loaded(): Api | null {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)('@opentelemetry/api') as Api;
    } catch {
      api = null;
    }
  }
  return api;
}

/** The project's tracer, or undefined when nothing would record its spans. */
function tracer(): TracerLike | undefined {
  const otel = loaded();
  if (!otel) return undefined;
  const provider = otel.trace.getTracerProvider();
  // The global provider is a proxy until an SDK registers one: asking it for its delegate costs nothing and says whether one is there.
  if (typeof provider.getDelegateTracer === 'function') return provider.getDelegateTracer(NAME);
  return provider.getTracer(NAME);
}

/** Attributes without the undefined ones (the SDK warns about those). */
function defined(attributes: SpanAttributes): SpanAttributes {
  const kept: SpanAttributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) kept[key] = value;
  return kept;
}

/** Start a span, child of the active one; undefined when no tracer is registered. */
export function startSpan(name: string, kind: number, attributes?: SpanAttributes): SpanHandle | undefined {
  const found = tracer();
  return found ? found.startSpan(name, { kind, ...(attributes ? { attributes: defined(attributes) } : {}) }, api!.context.active()) : undefined;
}

/** Run `fn` with `span` as the active span, so spans started inside are its children. */
export function withSpan<T>(span: SpanHandle | undefined, fn: () => T): T {
  return span ? api!.context.with(api!.trace.setSpan(api!.context.active(), span), fn) : fn();
}

/** End a span, marking it failed when `error` is given. */
export function endSpan(span: SpanHandle | undefined, attributes?: SpanAttributes, error?: unknown): void {
  if (!span) return;
  if (attributes) span.setAttributes(defined(attributes));
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/** Run `fn` in a span of its own, ended when it settles; `attributes` reads its result. */
export async function inSpan<T>(name: string, attributes: SpanAttributes | undefined, fn: () => Promise<T>, after?: (result: T) => SpanAttributes): Promise<T> {
  const span = startSpan(name, SpanKind.INTERNAL, attributes);
  if (!span) return fn();
  try {
    const result = await withSpan(span, fn);
    endSpan(span, after?.(result));
    return result;
  } catch (error) {
    endSpan(span, undefined, error);
    throw error;
  }
}

/**
 * Stable error codes. Tests and callers branch on `code`, never on message text.
 *
 * | code | status | meaning |
 * |---|---|---|
 * | `options.invalid` | 500 | a factory was given an invalid option (a programming error) |
 * | `input.invalid` | 400 | the request is malformed; `pointer` names the field |
 * | `input.too-large` | 413 | the body or one of its arrays is over a configured limit |
 * | `input.timeout` | 408 | the request's body did not arrive within the server's deadline |
 * | `budget.unreachable` | 413 | the protected messages alone exceed the token budget |
 * | `upstream.failed` | 502 | a model, embedder, summarizer or store failed |
 * | `upstream.timeout` | 504 | the model did not answer within the proxy's deadline |
 * | `aborted` | 499 | the caller's AbortSignal fired |
 * | `unavailable` | 503 | the server is draining (shutting down) and takes no new requests |
 * | `unauthorized` | 401 | the proxy needs a key of its own and the request had none, or an unknown one |
 * | `rate.limited` | 429 | the proxy key is over its requests or tokens for the window (`details.retryAfterMs`) |
 * | `not-found` | 404 | the proxy does not serve this method and path |
 * | `loop.detected` | 508 | the request already went through this proxy (its upstream points back at it) |
 * | `dependency.missing` | 500 | an optional package a feature needs is not installed (the message names it) |
 * | `internal` | 500 | a bug; please report it |
 */
export type CompactorErrorCode =
  | 'options.invalid'
  | 'input.invalid'
  | 'input.too-large'
  | 'input.timeout'
  | 'budget.unreachable'
  | 'upstream.failed'
  | 'upstream.timeout'
  | 'aborted'
  | 'unavailable'
  | 'unauthorized'
  | 'rate.limited'
  | 'not-found'
  | 'loop.detected'
  | 'dependency.missing'
  | 'internal';

const STATUS: Record<CompactorErrorCode, number> = {
  'options.invalid': 500,
  'input.invalid': 400,
  'input.too-large': 413,
  'input.timeout': 408,
  'budget.unreachable': 413,
  'upstream.failed': 502,
  'upstream.timeout': 504,
  aborted: 499,
  unavailable: 503,
  unauthorized: 401,
  'rate.limited': 429,
  'not-found': 404,
  'loop.detected': 508,
  'dependency.missing': 500,
  internal: 500,
};

const MARKER = Symbol.for('context-compactor.error');

export interface CompactorErrorOptions {
  /** JSON-pointer-like path to the offending field, e.g. `messages[3].tool_call_id`. */
  pointer?: string;
  cause?: unknown;
  /** Override the status implied by the code. */
  status?: number;
  /** Extra machine-readable details (e.g. token counts for `budget.unreachable`). */
  details?: Record<string, unknown>;
}

/**
 * The one error type thrown by context-compactor.
 *
 * @example
 * try { await compactor.compact(body) } catch (error) {
 *   if (CompactorError.isInstance(error) && error.code === 'input.invalid') console.log(error.pointer)
 * }
 */
export class CompactorError extends Error {
  readonly [MARKER] = true;
  readonly code: CompactorErrorCode;
  readonly status: number;
  /** Whether the message is safe to show to the API caller. */
  readonly expose: boolean;
  readonly pointer: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: CompactorErrorCode, message: string, options: CompactorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CompactorError';
    this.code = code;
    this.status = options.status ?? STATUS[code];
    this.expose = this.status < 500;
    this.pointer = options.pointer;
    this.details = options.details;
  }

  /** True for any CompactorError, even one from a duplicated install of this package. */
  static isInstance(value: unknown): value is CompactorError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Throws `options.invalid` naming the option. */
export function invalidOption(option: string, expected: string, received: unknown): never {
  let shown: string;
  try {
    shown =
      typeof received === 'function'
        ? 'a function'
        : typeof received === 'number' && !Number.isFinite(received)
          ? String(received)
          : (JSON.stringify(received) ?? String(received));
  } catch {
    shown = String(received);
  }
  throw new CompactorError('options.invalid', `option "${option}" must be ${expected}; received ${shown}`, {
    pointer: option,
  });
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known name closest to a mistyped one, if it is close enough to be what was meant. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Throws `options.invalid` for the first key of `value` not in `known`, with its path and the
 * closest known name: a typo (`stratgy`) must not be ignored silently.
 */
export function rejectUnknownKeys(value: object, known: readonly string[], path = ''): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const at = path ? `${path}.${key}` : key;
    const guess = closest(key, known);
    throw new CompactorError(
      'options.invalid',
      `unknown option "${at}"${guess ? `; did you mean "${path ? `${path}.` : ''}${guess}"?` : ''} (known: ${known.join(', ')})`,
      {
        pointer: at,
      },
    );
  }
}

/** Rethrow an `options.invalid` error with its option under `path` (`defaults.`, `proxy.cache.`): errors name what the user wrote. */
export function underPath<T>(path: string, build: () => T): T {
  const rename = (error: unknown): never => {
    if (CompactorError.isInstance(error) && error.code === 'options.invalid' && error.pointer !== undefined && !error.pointer.startsWith(path)) {
      const pointer = `${path}${error.pointer}`;
      throw new CompactorError('options.invalid', error.message.replaceAll(`"${error.pointer}`, `"${pointer}`), { pointer, cause: error });
    }
    throw error;
  };
  try {
    const result = build();
    return (result instanceof Promise ? result.catch(rename) : result) as T;
  } catch (error) {
    return rename(error);
  }
}

export function isAbortError(error: unknown): boolean {
  if (CompactorError.isInstance(error)) return error.code === 'aborted';
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}

/**
 * Rethrows an error that means the caller gave up (an abort, or any error once the signal fired) as
 * the `aborted` CompactorError; returns for any other error, which the caller recovers from.
 */
export function rethrowIfAborted(error: unknown, signal: AbortSignal | undefined): void {
  if (isAbortError(error) || signal?.aborted)
    throw CompactorError.isInstance(error) ? error : new CompactorError('aborted', 'the operation was aborted', { cause: error });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });
  }
}

import { isUtf8 } from 'node:buffer';
import { CompactorError } from '../core/errors.js';
import { LARGE_BODY_BYTES, nextTurn } from '../core/turns.js';

/** Deepest nesting of arrays and objects a request body may have (tool schemas included). */
export const MAX_JSON_DEPTH = 64;

/**
 * Refuse a body nested deeper than `MAX_JSON_DEPTH` (a 5,000-deep `response_format` would
 * otherwise overflow the stack of whatever walks it), naming the field where it goes too deep.
 * Iterative, so the check itself cannot overflow.
 */
export function checkDepth(body: unknown, limit = MAX_JSON_DEPTH): void {
  const stack: [unknown, number, string][] = [[body, 1, 'body']];
  while (stack.length > 0) {
    const [value, depth, at] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > limit) {
      const shown = at.length > 120 ? `${at.slice(0, 120)}…` : at;
      throw new CompactorError('input.invalid', `${shown}: nested more than ${limit} deep`, { pointer: at });
    }
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) stack.push([value[index], depth + 1, `${at}[${index}]`]);
    } else for (const [key, item] of Object.entries(value)) if (typeof item === 'object' && item !== null) stack.push([item, depth + 1, `${at}.${key}`]);
  }
}

/** Read a body's bytes from its chunks, up to `limit` bytes (413 `input.too-large` past it, or at once when its declared length is). */
export async function readBody(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined,
  limit: number,
  declaredLength?: number | null,
): Promise<Buffer> {
  if (declaredLength !== undefined && declaredLength !== null && Number.isFinite(declaredLength) && declaredLength > limit) {
    throw new CompactorError('input.too-large', `body: ${declaredLength} bytes is over the limit of ${limit}`, { pointer: 'body' });
  }
  const parts: Buffer[] = [];
  let size = 0;
  if (chunks) {
    for await (const chunk of chunks) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      size += bytes.byteLength;
      if (size > limit) throw new CompactorError('input.too-large', `body: over the limit of ${limit} bytes`, { pointer: 'body' });
      parts.push(bytes);
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}

/** Read a JSON body from its chunks, up to `limit` bytes. */
export async function readJson(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined,
  limit: number,
  declaredLength?: number | null,
): Promise<unknown> {
  return (await readJsonText(chunks, limit, declaredLength)).body;
}

/** Read a JSON body and keep its text: shadow mode forwards the bytes as they came. */
export async function readJsonText(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined,
  limit: number,
  declaredLength?: number | null,
): Promise<{ body: unknown; text: string }> {
  const bytes = await readBody(chunks, limit, declaredLength);
  const size = bytes.byteLength;
  // Invalid UTF-8 is refused, not replaced with U+FFFD and sent on as if the caller had written it.
  if (!isUtf8(bytes)) throw new CompactorError('input.invalid', 'body: is not valid UTF-8', { pointer: 'body' });
  const text = bytes.toString('utf8');
  // Decoding and parsing megabytes are two long steps: other requests get a turn between them.
  if (size > LARGE_BODY_BYTES) await nextTurn();
  try {
    return { body: JSON.parse(text), text };
  } catch {
    throw new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body' });
  }
}

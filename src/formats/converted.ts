import { CompactorError } from '../core/errors.js';
import type { InputLimits } from '../core/validate.js';
import { validateRequest } from '../core/validate.js';
import type { Conversion } from './wire-format.js';

/**
 * A body converted to the canonical shape and validated there, with a validation error's pointer
 * mapped back into the body as its client wrote it (`messages[4]` → `input[7]`).
 */
export function validatedConversion<C extends Conversion & { pointer(canonicalPointer: string): string }>(
  body: unknown,
  convert: (body: Record<string, unknown>) => C,
  limits: InputLimits,
): C {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CompactorError('input.invalid', 'body: must be a JSON object', { pointer: 'body' });
  const conversion = convert(body as Record<string, unknown>);
  try {
    validateRequest(conversion.canonical, limits);
  } catch (error) {
    if (CompactorError.isInstance(error) && error.pointer) {
      const pointer = conversion.pointer(error.pointer);
      throw new CompactorError(error.code, error.message.replace(error.pointer, pointer), { pointer, cause: error });
    }
    throw error;
  }
  return conversion;
}

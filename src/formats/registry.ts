import { invalidOption } from '../core/errors.js';
import { anthropicFormat } from './anthropic/index.js';
import { openaiFormat } from './openai.js';
import { responsesFormat } from './responses/index.js';
import type { FormatName, WireFormat } from './wire-format.js';

export const FORMATS: Readonly<Record<FormatName, WireFormat>> = { openai: openaiFormat, anthropic: anthropicFormat, responses: responsesFormat };

/** The format named, or for `auto` the one the body is in (Anthropic when it has Anthropic-only fields). */
export function resolveFormat(format: 'auto' | FormatName, body: unknown): WireFormat {
  if (format !== 'auto') {
    const named = Object.hasOwn(FORMATS, format) ? FORMATS[format] : undefined;
    if (!named) invalidOption('format', `"auto" or one of ${Object.keys(FORMATS).join(', ')}`, format);
    return named;
  }
  if (anthropicFormat.detect(body)) return anthropicFormat;
  return responsesFormat.detect(body) ? responsesFormat : openaiFormat;
}

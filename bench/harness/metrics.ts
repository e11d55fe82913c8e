import { messageText } from '../../src/text/message-text.js';
import { STOPWORDS } from '../../src/text/stopwords.js';
import type { Messages } from '../../src/core/types.js';

export { messageText };

/** Lower-case alphanumeric words with the stop words removed. */
export function contentWords(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => !STOPWORDS.has(word));
}

export function outputText(messages: Messages): string {
  return messages.map(messageText).join('\n');
}

/** ER_verbatim for one item: the fraction of evidence texts found verbatim in the output. */
export function verbatimRetention(evidenceTexts: readonly string[], output: string): number | undefined {
  if (evidenceTexts.length === 0) return undefined;
  let kept = 0;
  for (const text of evidenceTexts) if (output.includes(text)) kept++;
  return kept / evidenceTexts.length;
}

/**
 * The fraction of the answer's content words (less those in the question) present in a text.
 * Undefined when the answer has no such word.
 */
export function factCoverage(answer: string, question: string, text: string | Set<string>): number | undefined {
  const asked = new Set(contentWords(question));
  const wanted = [...new Set(contentWords(answer))].filter((word) => !asked.has(word));
  if (wanted.length === 0) return undefined;
  const present = typeof text === 'string' ? new Set(contentWords(text)) : text;
  return wanted.filter((word) => present.has(word)).length / wanted.length;
}

/**
 * ER_fact for one item: the answer's fact coverage in the output divided by its coverage in the
 * full history (capped at 1). Undefined when the full history covers none of it.
 */
export function factRetention(answer: string, question: string, output: string | Set<string>, full: string | Set<string>): number | undefined {
  const base = factCoverage(answer, question, full);
  if (base === undefined || base === 0) return undefined;
  const kept = factCoverage(answer, question, output) ?? 0;
  return Math.min(1, kept / base);
}

export function mean(values: readonly (number | undefined)[]): number | undefined {
  const defined = values.filter((value): value is number => value !== undefined);
  return defined.length === 0 ? undefined : defined.reduce((sum, value) => sum + value, 0) / defined.length;
}

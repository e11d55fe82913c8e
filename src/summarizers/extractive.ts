import { defineOptions, rules } from '../core/define-options.js';
import { terms } from '../text/bm25.js';
import { messageText } from '../text/message-text.js';
import type { Summarizer } from './types.js';

export interface ExtractiveOptions {
  /** Diversity: how much overlap with already chosen sentences lowers a candidate (0–1). @default 0.7 */
  diversity?: number;
}

const MONTHS =
  /\b(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(tember)?|oct(ober)?|nov(ember)?|dec(ember)?|monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|tomorrow|last (week|month|year)|next (week|month|year))\b/i;
const NUMBER = /\d/;
const URL_OR_ID = /(https?:\/\/\S+|\b[A-Z]{2,}[-_]?\d+\b|\b[0-9a-f]{8,}\b)/;

interface Sentence {
  text: string;
  order: number;
  terms: Set<string>;
  score: number;
}

/** Split a message into sentences, keeping a leading "Speaker:" on each. */
function sentences(text: string): string[] {
  const speaker = /^([\p{Lu}][\p{L}'-]{0,30}):\s/u.exec(text)?.[1];
  const body = speaker ? text.slice(speaker.length + 1).trim() : text;
  const parts = body
    .split(/(?<=[.!?])\s+(?=[\p{Lu}\d"'])|\n+/u)
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  return parts.map((part) => (speaker ? `${speaker}: ${part}` : part));
}

/**
 * A local extractive summarizer (no network, milliseconds per span). It picks the most central
 * sentences of a span by term weight, with maximal-marginal-relevance for coverage, always
 * preferring sentences that carry dates, numbers, names, IDs or URLs, and returns them as bullets
 * in their original order. A session header (e.g. `[Session 3, 8 May 2023]`) is kept as the
 * summary's first line.
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: summarize({ summarizer: extractiveSummarizer() }) })
 */
export const EXTRACTIVE_DEFAULTS = { diversity: 0.7 };

export const EXTRACTIVE_OPTIONS = defineOptions<ExtractiveOptions, typeof EXTRACTIVE_DEFAULTS>({
  factory: 'extractiveSummarizer',
  defaults: EXTRACTIVE_DEFAULTS,
  rules: { diversity: rules.number(0, 1) },
  docs: [['src/summarizers/extractive.ts', 'ExtractiveOptions']],
});

export function extractiveSummarizer(options: ExtractiveOptions = {}): Summarizer {
  const { diversity } = EXTRACTIVE_OPTIONS.parse(options);
  return {
    id: `extractive-v1:${diversity}`,
    async summarize(messages, summarizeOptions) {
      const count = summarizeOptions.countTokens ?? ((text: string) => Math.ceil(text.length / 4));
      const lines: string[] = [];
      const all: Sentence[] = [];
      let header = '';
      for (const message of messages) {
        let text = messageText(message).trim();
        const match = /^\[[^\]\n]{3,80}\]\n?/.exec(text);
        if (match) {
          header ||= match[0].trim();
          text = text.slice(match[0].length).trim();
        }
        for (const sentence of sentences(text)) {
          const sentenceTerms = new Set(terms(sentence.replace(/^[^:]{1,32}:\s/, '')));
          // Pure filler ("Cool.", "Wow!") carries nothing worth a summary's space.
          if (sentenceTerms.size > 0) all.push({ text: sentence, order: all.length, terms: sentenceTerms, score: 0 });
        }
      }
      if (header) lines.push(header);
      // Term weight: how often the span returns to a term (centrality), dampened.
      const frequency = new Map<string, number>();
      for (const sentence of all) for (const term of sentence.terms) frequency.set(term, (frequency.get(term) ?? 0) + 1);
      for (const sentence of all) {
        let weight = 0;
        for (const term of sentence.terms) weight += Math.log(1 + frequency.get(term)!);
        const body = sentence.text.replace(/^[^:]{1,32}:\s/, '');
        const names = (body.slice(1).match(/\b\p{Lu}[\p{Ll}]+/gu) ?? []).length;
        let facts = 0;
        if (MONTHS.test(body)) facts += 2;
        if (NUMBER.test(body)) facts += 2;
        if (URL_OR_ID.test(body)) facts += 2;
        facts += Math.min(3, names);
        // Prefer informative sentences over very short ones ("Wow!"), without favouring rambling.
        sentence.score = (weight / Math.sqrt(Math.max(4, sentence.terms.size))) * (1 + 0.35 * facts) * (sentence.terms.size < 3 ? 0.3 : 1);
      }
      // Sentences far below the best are filler; a shorter summary beats a padded one.
      const floor = 0.15 * Math.max(0, ...all.map((sentence) => sentence.score));
      const chosen: Sentence[] = [];
      const covered = new Set<string>();
      let budget = summarizeOptions.maxTokens - (header ? count(header) + 1 : 0);
      const pool = all.filter((sentence) => sentence.score >= floor);
      while (pool.length > 0 && budget > 0) {
        let best = -1;
        let bestScore = -Infinity;
        for (let index = 0; index < pool.length; index++) {
          const sentence = pool[index]!;
          let overlap = 0;
          for (const term of sentence.terms) if (covered.has(term)) overlap++;
          const ratio = sentence.terms.size === 0 ? 1 : overlap / sentence.terms.size;
          const score = sentence.score * (1 - diversity * ratio);
          if (score > bestScore) {
            bestScore = score;
            best = index;
          }
        }
        const [sentence] = pool.splice(best, 1);
        const cost = count(`- ${sentence!.text}`) + 1;
        if (cost > budget) continue;
        budget -= cost;
        chosen.push(sentence!);
        for (const term of sentence!.terms) covered.add(term);
      }
      chosen.sort((a, b) => a.order - b.order);
      for (const sentence of chosen) lines.push(`- ${sentence.text}`);
      return lines.join('\n');
    },
  };
}

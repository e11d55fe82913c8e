import type { Strategy } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { stableHistory } from '../../src/core/window.js';
import { messageText } from '../../src/text/message-text.js';
import { sessions } from '../../src/text/sessions.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import { keepLatestExchange } from '../../src/core/nets.js';
import { isToolMessage } from '../../src/core/clearing.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import { SCORING_DEFAULTS, SCORING_RULES, type ScoringOptions, scoreUnits } from '../relevance/score.js';

export interface CacheAwareOptions extends ScoringOptions {
  /**
   * Share of the budget for the excerpts block: the earlier turns most relevant to the latest
   * message, quoted in one labelled message just before it. The block changes with every question,
   * so it is billed at the full input price on every request while the rest of the prompt is
   * billed at the cached rate. `auto` sizes it from the model's cache discount (its cached price
   * over its input price, from the price table): small where cached tokens cost a tenth, larger
   * where they cost half; for a model the table does not know, as for a half-price cache.
   * @default 'auto'
   */
  excerptShare?: number | 'auto';
  /**
   * When the recent turns outgrow their room, they are cut down to this share of it at once, then
   * grow by appending until the room is full again (see `truncate`).
   * @default 0.6
   */
  lowWater?: number;
  /** Share of the budget set aside for the latest turn. @default 0.1 */
  latestShare?: number;
  /** Keep the first N user turns before the recent ones. @default 0 */
  keepFirstUserTurns?: number;
  /**
   * Marks the first message of a session and captures its header (e.g. its date); excerpts carry
   * their session's header, because temporal questions need dates. `null` disables.
   * @default /^\[Session [^\]]*\]/
   */
  sessionHeader?: RegExp | null;
}

export const CACHE_AWARE_DEFAULTS = {
  ...SCORING_DEFAULTS,
  excerptShare: 'auto' as number | 'auto',
  lowWater: 0.6,
  latestShare: 0.1,
  keepFirstUserTurns: 0,
  sessionHeader: SESSION_HEADER as RegExp | null,
};

export const EXCERPTS_LABEL = '[Earlier in this conversation, for the latest message]';

export const CACHE_AWARE_OPTIONS = defineOptions<CacheAwareOptions, typeof CACHE_AWARE_DEFAULTS>({
  factory: 'cacheAware',
  defaults: CACHE_AWARE_DEFAULTS,
  rules: {
    ...SCORING_RULES,
    excerptShare: rules.either(rules.oneOf('auto'), rules.number(0, 1, { max: true })),
    lowWater: rules.number(0, 1, { min: true }),
    latestShare: rules.number(0, 1, { max: true }),
    keepFirstUserTurns: rules.int(0),
    sessionHeader: rules.regExpOrNull,
  },
  docs: [
    ['strategies/cache-aware/index.ts', 'CacheAwareOptions'],
    ['strategies/relevance/score.ts', 'ScoringOptions'],
  ],
});

/**
 * The excerpts block's share of the budget for a cache discount (cached price over input price):
 * half the discount ratio, from 3% to 35% of the budget. Each excerpt token costs as much as
 * 1 / ratio tokens of the cached window, so where cached tokens cost a tenth (gpt-5, Claude) the
 * block gets 5% of the budget, and where they cost half (gpt-4o) 25%. On the shipped replay at
 * 2,000 tokens this kept the prompt-bill saving near 50% under the 10% rules and over 70% under
 * gpt-4o's (bench/RESULTS.md has the sweep).
 */
export function excerptShareFor(ratio: number | undefined): number {
  const r = ratio === undefined || !Number.isFinite(ratio) ? 0.5 : Math.max(0, Math.min(1, ratio));
  return Math.min(0.35, Math.max(0.03, 0.5 * r));
}

/**
 * Price-aware compaction that keeps the provider's prompt cache hitting. The prompt is laid out as
 * system prompt, then the recent turns in a window whose front moves only in steps, at points
 * derived from the history (see `truncate`), then a block of excerpts picked for the latest
 * message, then the latest turn. Between steps every prompt starts with the previous one's bytes,
 * so all but the new turn and the excerpts are billed at the cached rate; the excerpts block is
 * sized from the model's cache price. Breakpoints for Anthropic's cache go at the end of the
 * stable prefix and of the window.
 *
 * Safety nets, reported in `info.nets`: the latest answer and the message it answers are kept when
 * they fit in half the budget; with nothing relevant (a cold history, a question that shares no
 * words with it), the excerpts fill by recency.
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: cacheAware() })
 */
export function cacheAware(options: CacheAwareOptions = {}): Strategy {
  const settings = CACHE_AWARE_OPTIONS.parse(options);

  return {
    name: 'cache-aware',
    async apply(messages, context) {
      const parts = context.partition(messages);
      const counter = context.counter;
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const units = parts.units;
      // In an agent run (tool calls in the history) 'auto' quotes nothing: excerpts never quote tool
      // exchanges, which are what an agent step needs (the tool-results stage keeps their values),
      // and their reserve would only shrink the window. Decided per conversation, so the window's
      // room changes once, at the first tool call, not between its requests.
      const agentRun = settings.excerptShare === 'auto' && messages.some(isToolMessage);
      const share = agentRun
        ? 0
        : settings.excerptShare === 'auto'
          ? excerptShareFor(context.price ? context.price.cachedInput / context.price.input : undefined)
          : settings.excerptShare;
      const excerptRoom = Math.floor(share * context.budget);
      const layout = stableHistory(messages, parts, {
        budget: context.budget,
        fixedTokens: context.fixedTokens,
        reserve: Math.ceil(settings.latestShare * context.budget) + excerptRoom,
        lowWater: settings.lowWater,
        firstTurns: settings.keepFirstUserTurns,
      });
      const keep = layout.keep;
      let left = layout.left;

      const nets: Record<string, unknown> = {};
      const net = keepLatestExchange(messages, parts, keep, left, context.budget);
      left = net.left;
      if (net.added > 0) nets.latestAnswer = net.added;

      // Excerpts: earlier turns, quoted as text; tool calls and their results are not quoted.
      const quotable = (unit: number) =>
        !keep[unit] &&
        units[unit]!.indices.every((index) => {
          const message = messages[index]!;
          return (message.role === 'user' || message.role === 'assistant') && !isToolMessage(message);
        });
      const candidates = layout.dropped.filter(quotable);
      const room = Math.min(excerptRoom, left);
      const scores = candidates.length > 0 && room > 0 ? await scoreUnits(messages, parts, candidates, context, settings, 'cache-aware') : undefined;
      const picked: number[] = [];
      let estimate = counter.message({ role: 'system', content: EXCERPTS_LABEL });
      if (scores) {
        const order = [...candidates].sort((a, b) => scores.score[b]! - scores.score[a]! || b - a);
        for (const unit of order) {
          if (scores.score[unit]! <= 0) break;
          if (estimate + units[unit]!.tokens > room) continue;
          picked.push(unit);
          estimate += units[unit]!.tokens;
        }
        // Net: with nothing relevant left to add, the newest turns fill what is left of the block.
        let filled = 0;
        const chosen = new Set(picked);
        for (let position = candidates.length - 1; position >= 0; position--) {
          const unit = candidates[position]!;
          if (chosen.has(unit) || estimate + units[unit]!.tokens > room) continue;
          picked.push(unit);
          estimate += units[unit]!.tokens;
          filled++;
        }
        if (filled > 0) nets.recencyFill = filled;
        if (scores.cold) nets.cold = true;
      }

      const sessionOf = sessions(messages, settings.sessionHeader);
      const render = (chosen: readonly number[]): ChatMessage | undefined => {
        if (chosen.length === 0) return undefined;
        const lines = [EXCERPTS_LABEL];
        let shown = '';
        const indices = chosen.flatMap((unit) => units[unit]!.indices).sort((a, b) => a - b);
        for (const index of indices) {
          const header = sessionOf.header[index]!;
          if (header !== '' && header !== shown && sessionOf.first[index] !== index) lines.push(header);
          if (header !== '') shown = header;
          lines.push(messageText(messages[index]!));
        }
        return { role: 'system', content: lines.join('\n') };
      };
      // The rendered block (headers included) must fit: the weakest picks go first.
      let block = render(picked);
      while (block && counter.message(block) > room) {
        picked.pop();
        block = render(picked);
      }

      const output: ChatMessage[] = [];
      // Just before the latest turn (with no user message, before the last unit: never inside a tool chain).
      const latestStart = parts.latestUser >= 0 ? parts.latestUser : units[units.length - 1]!.indices[0]!;
      for (let index = 0; index < messages.length; index++) {
        if (index === latestStart && block) output.push(block);
        if (keep[parts.unitOf[index]!]) output.push(messages[index]!);
      }
      const breakpoints = [layout.prefixEnd, layout.windowEnd].filter((message) => message !== undefined);
      const info: Record<string, unknown> = { ...(scores?.info ?? {}), excerptShare: share, excerpts: picked.length, trimmed: layout.trimmed };
      if (agentRun) info.agentRun = true;
      if (Object.keys(nets).length > 0) info.nets = nets;
      return { messages: output, breakpoints, failures: scores?.failures ?? [], info };
    },
  };
}

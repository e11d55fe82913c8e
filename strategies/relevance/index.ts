import { keepLatestExchange } from '../../src/core/nets.js';
import type { Strategy } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { type Sessions, sessions } from '../../src/text/sessions.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import { SCORING_DEFAULTS, SCORING_RULES, type ScoringOptions, scoreUnits } from '../scoring.js';

export interface RelevanceOptions extends ScoringOptions {
  /** Share of the budget (after protected messages) kept for the most recent turns. @default 0.1 */
  recencyShare?: number;
  /**
   * Marks the first message of a session and captures its header (e.g. its date). A kept turn
   * whose session header was dropped gets the header back in its omission marker, because
   * temporal questions need dates. `null` disables.
   * @default /^\[Session [^\]]*\]/
   */
  sessionHeader?: RegExp | null;
  /**
   * Insert a short marker where turns were omitted (counted in the budget). Off by default: on
   * LoCoMo a marker per gap cost about 0.07 of ER_verbatim at 2k tokens (bench/notes/HISTORY.md).
   * @default false
   */
  markers?: boolean;
  /**
   * @deprecated Use `sessionHeader: null`, which turns the header notes off the same way; removed
   * in the next major. (With `markers: true`, this kept the session boundaries for the markers.)
   * @default false
   */
  omitSessionHeaders?: boolean;
  /** Role of marker messages. @default 'system' */
  markerRole?: 'system' | 'user' | 'assistant';
}

export const RELEVANCE_DEFAULTS = {
  ...SCORING_DEFAULTS,
  recencyShare: 0.1,
  sessionHeader: SESSION_HEADER as RegExp | null,
  markers: false,
  omitSessionHeaders: false,
  markerRole: 'system' as const,
};

export const RELEVANCE_OPTIONS = defineOptions<RelevanceOptions, typeof RELEVANCE_DEFAULTS>({
  factory: 'relevance',
  defaults: RELEVANCE_DEFAULTS,
  rules: {
    ...SCORING_RULES,
    recencyShare: rules.number(0, 1),
    sessionHeader: rules.regExpOrNull,
    markers: rules.boolean,
    omitSessionHeaders: rules.boolean,
    markerRole: rules.oneOf('system', 'user', 'assistant'),
  },
  docs: [
    ['strategies/relevance/index.ts', 'RelevanceOptions'],
    ['strategies/scoring.ts', 'ScoringOptions'],
  ],
});

/**
 * Query-aware relevance pruning: keeps the turns the latest question needs. Every droppable unit
 * is scored by reciprocal rank fusion of dense cosine (when an embedder is set) and BM25; hits lend
 * a discounted score to their neighbours; a share of the budget goes to the most recent turns; the
 * rest is filled greedily by score, and the output stays chronological.
 *
 * Safety nets, each reported in `info.nets` when it acts: the latest answer and the message it
 * answers are kept when they fit in half the budget; turns that score nothing (a cold history, a
 * question that shares no words with it) still fill what budget is left, newest first.
 *
 * @example
 * createCompactor({ maxInputTokens: 2000, strategy: relevance({ embedder: useLite() }) })
 */
export function relevance(options: RelevanceOptions = {}): Strategy {
  const settings = RELEVANCE_OPTIONS.parse(options);

  return {
    name: 'relevance',
    async apply(messages, context) {
      const parts = context.partition(messages);
      const counter = context.counter;
      if (context.fixedTokens + parts.tokens <= context.budget) return { messages };
      const available = context.budget - context.fixedTokens - parts.protectedTokens;
      const units = parts.units;
      const keep = new Uint8Array(units.length);
      for (let unit = 0; unit < units.length; unit++) if (units[unit]!.protected) keep[unit] = 1;
      if (available <= 0) return { messages: messages.filter((_, index) => keep[parts.unitOf[index]!]) };

      // Recency: the newest whole turns, up to the reserved share.
      let recencyLeft = Math.floor(available * settings.recencyShare);
      let left = available;
      let oldestRecent = parts.turns + 1;
      for (let turn = parts.turns; turn >= 0 && recencyLeft > 0; turn--) {
        const tokens = parts.turnTokens[turn]!;
        if (tokens === 0) continue;
        if (tokens > recencyLeft) break;
        recencyLeft -= tokens;
        left -= tokens;
        oldestRecent = turn;
      }
      for (let unit = 0; unit < units.length; unit++) if (!units[unit]!.protected && units[unit]!.turn >= oldestRecent) keep[unit] = 2;

      // Net: the latest answer and the message it answers, when they fit in half the budget.
      const nets: Record<string, unknown> = {};
      // (Recent turns give way for it, oldest first.)
      const net = keepLatestExchange(messages, parts, keep, left, context.budget);
      left = net.left;
      if (net.added > 0) nets.latestAnswer = net.added;

      const candidates: number[] = [];
      for (let unit = 0; unit < units.length; unit++) if (!keep[unit]) candidates.push(unit);
      const scores = await scoreUnits(messages, parts, candidates, context, settings, 'relevance');
      const order = [...candidates].sort((a, b) => scores.score[b]! - scores.score[a]! || b - a);
      const picked: number[] = [];
      let scored = 0;
      for (const unit of order) {
        if (scores.score[unit]! <= 0) break;
        if (units[unit]!.tokens > left) continue;
        keep[unit] = 1;
        left -= units[unit]!.tokens;
        picked.push(unit);
        scored++;
      }
      // Net: what scored nothing still fills the budget that is left, newest first.
      let filled = 0;
      for (let position = candidates.length - 1; position >= 0 && left > 0; position--) {
        const unit = candidates[position]!;
        if (keep[unit] || units[unit]!.tokens > left) continue;
        keep[unit] = 1;
        left -= units[unit]!.tokens;
        picked.push(unit);
        filled++;
      }
      if (filled > 0) nets.recencyFill = filled;
      if (scores.cold) nets.cold = true;

      // Build the output with its notes; while notes push it over budget, drop the last pick.
      const sessionOf = sessions(messages, settings.sessionHeader);
      const done = (output: ChatMessage[]) => {
        const info: Record<string, unknown> = { ...scores.info, kept: scored };
        if (Object.keys(nets).length > 0) info.nets = nets;
        return { messages: output, failures: scores.failures, info };
      };
      const tokensOf = (output: readonly ChatMessage[]) => {
        let tokens = context.fixedTokens;
        for (const message of output) tokens += counter.message(message);
        return tokens;
      };
      let notes = true;
      let output = assemble(messages, parts.unitOf, keep, sessionOf, settings.markers, !settings.omitSessionHeaders, settings.markerRole);
      while (tokensOf(output) > context.budget) {
        // With no pick left to give up, the notes go: what was kept fits without them.
        if (picked.length === 0) {
          notes = false;
          output = assemble(messages, parts.unitOf, keep, sessionOf, false, false, settings.markerRole);
          break;
        }
        keep[picked.pop()!] = 0;
        output = assemble(messages, parts.unitOf, keep, sessionOf, settings.markers, notes && !settings.omitSessionHeaders, settings.markerRole);
      }
      // What the notes left free still takes any turn that fits, newest first: no turn is dropped while budget remains.
      let free = context.budget - tokensOf(output);
      for (let position = candidates.length - 1; position >= 0 && free > 0; position--) {
        const unit = candidates[position]!;
        if (keep[unit] || units[unit]!.tokens > free) continue;
        keep[unit] = 1;
        const tried = assemble(messages, parts.unitOf, keep, sessionOf, notes && settings.markers, notes && !settings.omitSessionHeaders, settings.markerRole);
        const tokens = tokensOf(tried);
        if (tokens > context.budget) {
          keep[unit] = 0;
          continue;
        }
        output = tried;
        free = context.budget - tokens;
        nets.recencyFill = ((nets.recencyFill as number | undefined) ?? 0) + 1;
      }
      return done(output);
    },
  };
}

function assemble(
  messages: readonly ChatMessage[],
  unitOf: Int32Array,
  keep: Uint8Array,
  sessionOf: Sessions,
  markers: boolean,
  headers: boolean,
  role: 'system' | 'user' | 'assistant',
): ChatMessage[] {
  const output: ChatMessage[] = [];
  let omitted = 0;
  let shownHeader = '';
  for (let index = 0; index < messages.length; index++) {
    if (!(keep[unitOf[index]!]! > 0)) {
      omitted++;
      continue;
    }
    const message = messages[index]!;
    const header = sessionOf.header[index]!;
    const startsSession = sessionOf.first[index] === index;
    const needHeader = headers && header !== '' && header !== shownHeader && !startsSession;
    const canMark = message.role !== 'system' && message.role !== 'developer' && message.role !== 'tool' && message.role !== 'function';
    if (canMark && ((markers && omitted > 0) || needHeader)) {
      const note = markers && omitted > 0 ? `[${omitted} earlier messages omitted]` : '';
      output.push({ role, content: needHeader ? `${note}${note ? ' ' : ''}${header}` : note });
      omitted = 0;
    }
    if (needHeader || startsSession) shownHeader = header;
    output.push(message);
    if (canMark) omitted = 0;
  }
  return output;
}

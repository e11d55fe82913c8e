import type { FailureRecord, Strategy } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { stableHistory } from '../../src/core/window.js';
import { sessions } from '../../src/text/sessions.js';
import { SESSION_HEADER } from '../../src/text/stopwords.js';
import { keepLatestExchange } from '../../src/core/nets.js';
import { isToolMessage } from '../../src/core/clearing.js';
import { defineOptions, rules } from '../../src/core/define-options.js';
import { cacheTerms } from '../../src/prices.js';
import { SCORING_DEFAULTS, SCORING_RULES, type ScoringOptions, scoreUnits } from '../scoring.js';
import { earlyCutKey, loadEarlyCuts } from './early-cuts.js';
import { affordableExcerpts, EXCERPTS_LABEL, excerptGateScore, pickExcerpts, renderExcerpts } from './excerpts.js';

export { affordableExcerpts, EXCERPTS_LABEL, excerptGateScore } from './excerpts.js';

export interface CacheAwareOptions extends ScoringOptions {
  /**
   * Most of the budget the excerpts block may take: the earlier turns most relevant to the latest
   * message, quoted in one labelled message just before it. The block changes with every question,
   * so it is billed at the full input price, where the window is billed at the cached rate; it is
   * added only when the gate opens (`excerptGate`), and sized from what it saves (`excerptSpend`).
   * `auto`: 35% of the budget in a conversation, none in an agent run (a history with tool calls).
   * @default 'auto'
   */
  excerptShare?: number | 'auto';
  /**
   * The gate: excerpts are added only when the latest message's best BM25 match among the turns the
   * window dropped is strong against its best match among the last four messages, i.e. when
   * best outside / (best outside + best recent) reaches this. Chit-chat answers the latest exchange
   * and stays shut out; a question about something said long ago opens it. 0 opens it whenever
   * anything outside matches. On LoCoMo dev at 2,000 tokens under gpt-5, 0.75 let 92% of the QA
   * questions through and 20% of the chat turns it was consulted on (`npm run bench:gate`).
   * @default 0.75
   */
  excerptGate?: number;
  /**
   * What the block may cost, as a share of what the history the window dropped would have cost at
   * the cached price: the block's tokens, billed at the full price, stay within
   * `excerptSpend × cached price × dropped tokens`. At 1, quoting never costs more than sending the
   * dropped history would have. A long history under a cheap cache affords a large block, a short
   * one none; where cached tokens cost half (gpt-4o) the share caps it.
   * @default 1
   */
  excerptSpend?: number;
  /**
   * When the recent turns outgrow their room, they are cut down to this share of it at once, then
   * grow by appending until the room is full again (see `truncate`); never below what keeps the
   * prompt's start as long as the model's shortest cached prefix (from the price table).
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
  excerptGate: 0.75,
  excerptSpend: 1,
  lowWater: 0.6,
  latestShare: 0.1,
  keepFirstUserTurns: 0,
  sessionHeader: SESSION_HEADER as RegExp | null,
};

export const CACHE_AWARE_OPTIONS = defineOptions<CacheAwareOptions, typeof CACHE_AWARE_DEFAULTS>({
  factory: 'cacheAware',
  defaults: CACHE_AWARE_DEFAULTS,
  rules: {
    ...SCORING_RULES,
    excerptShare: rules.either(rules.oneOf('auto'), rules.number(0, 1, { max: true })),
    excerptGate: rules.number(0, 1),
    excerptSpend: rules.number(0, 1000),
    lowWater: rules.number(0, 1, { min: true }),
    latestShare: rules.number(0, 1, { max: true }),
    keepFirstUserTurns: rules.int(0),
    sessionHeader: rules.regExpOrNull,
  },
  docs: [
    ['strategies/cache-aware/index.ts', 'CacheAwareOptions'],
    ['strategies/scoring.ts', 'ScoringOptions'],
  ],
});

/** `excerptShare: 'auto'` in a conversation. */
export const AUTO_EXCERPT_SHARE = 0.35;
/**
 * An early cut only when the window's free room holds less than this share of the block: above it,
 * the block takes the free room and the cache keeps hitting (cut rarely).
 */
const EARLY_CUT_BELOW = 0.5;
/** The gate's recent messages: the exchange the latest message most likely answers. */
const RECENT_UNITS = 4;
/** Cache terms for a model the price table does not know: as for a half-price cache. */
const UNKNOWN_TERMS = { cached: 0.5, minTokens: 1024 };

/**
 * Price-aware compaction that keeps the provider's prompt cache hitting. The prompt is laid out as
 * system prompt, then the recent turns in a window whose front moves only in steps, at points
 * derived from the history (see `truncate`), then, when the latest message asks about something
 * the window dropped, a block of excerpts picked for it, then the latest turn. Between steps every
 * prompt starts with the previous one's bytes, so all but the new turn and the excerpts are billed
 * at the cached rate. The excerpts are gated (`excerptGate`) and sized from what they save
 * (`excerptSpend`); where the window leaves no room for them, it is cut early, and the cut is
 * recorded in the runtime's layout store so later requests derive the same window (see
 * `early-cuts.ts`). Breakpoints for Anthropic's cache go at the end of the stable prefix and of
 * the window.
 *
 * Safety nets, reported in `info.nets`: the latest answer and the message it answers are kept when
 * they fit in half the budget; what the relevant turns leave of an open block fills by recency.
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
      // exchanges, which are what an agent step needs (the tool-results stage keeps their values).
      // Decided per conversation, at its first tool call.
      const agentRun = settings.excerptShare === 'auto' && messages.some(isToolMessage);
      const terms = context.price ? cacheTerms(context.price) : UNKNOWN_TERMS;
      const share = agentRun ? 0 : settings.excerptShare === 'auto' ? AUTO_EXCERPT_SHARE : settings.excerptShare;
      const excerptRoom = Math.floor(share * context.budget);
      const latestStart = parts.latestUser >= 0 ? parts.latestUser : units[units.length - 1]!.indices[0]!;
      const failures: FailureRecord[] = [];

      // Early cuts made on earlier requests of this conversation, so the window is derived as it was laid out then.
      const loaded =
        excerptRoom > 0
          ? await loadEarlyCuts(
              context.runtime.layoutStore,
              earlyCutKey(messages, [
                context.tenant ?? null,
                context.budget,
                terms.cached,
                share,
                settings.excerptGate,
                settings.excerptSpend,
                settings.lowWater,
                settings.latestShare,
                settings.keepFirstUserTurns,
              ]),
              messages,
              parts,
              latestStart,
            )
          : undefined;
      if (loaded?.failure) failures.push(loaded.failure);
      const layout = stableHistory(messages, parts, {
        budget: context.budget,
        fixedTokens: context.fixedTokens,
        reserve: Math.ceil(settings.latestShare * context.budget),
        lowWater: settings.lowWater,
        firstTurns: settings.keepFirstUserTurns,
        minCachedPrefix: terms.minTokens,
        ...(loaded ? { claims: loaded.cuts.claims } : {}),
      });
      const keep = layout.keep;
      let left = layout.left;

      // Excerpts: earlier turns, quoted as text; tool calls and their results are not quoted.
      const scored: number[] = [];
      let droppedTokens = 0;
      for (let unit = 0; unit < units.length; unit++) {
        if (units[unit]!.protected || units[unit]!.indices[0]! >= latestStart) continue;
        if (!keep[unit]) droppedTokens += units[unit]!.tokens;
        const quotable = units[unit]!.indices.every((index) => {
          const message = messages[index]!;
          return (message.role === 'user' || message.role === 'assistant') && !isToolMessage(message);
        });
        if (quotable) scored.push(unit);
      }
      const wanted = affordableExcerpts(droppedTokens, terms.cached, settings.excerptSpend, excerptRoom);
      const labelTokens = counter.message({ role: 'system', content: EXCERPTS_LABEL });
      const worthScoring = wanted > labelTokens && scored.some((unit) => !keep[unit]);
      // The gate reads BM25 alone, before the query is embedded: a shut gate skips the embedding.
      let gate: number | undefined;
      const gateOpens = (sparse: Float64Array) => {
        let outside = 0;
        let recent = 0;
        scored.forEach((unit, position) => {
          if (!keep[unit]) outside = Math.max(outside, sparse[unit]!);
          else if (position >= scored.length - RECENT_UNITS) recent = Math.max(recent, sparse[unit]!);
        });
        gate = excerptGateScore(outside, recent);
        return gate > 0 && gate >= settings.excerptGate;
      };
      const scores = worthScoring ? await scoreUnits(messages, parts, scored, context, settings, 'cache-aware', gateOpens) : undefined;
      if (scores) failures.push(...scores.failures);
      const open = gate !== undefined && gate > 0 && gate >= settings.excerptGate;

      const nets: Record<string, unknown> = {};
      if (open && left < wanted * EARLY_CUT_BELOW) {
        // An early cut, where the free room holds less than half the block: the window drops whole
        // turns from its front, as its next cut would, until the block fits; recorded, so later
        // requests derive the same window.
        const window: number[] = [];
        let size = 0;
        for (let unit = layout.start; unit < units.length; unit++) {
          if (!keep[unit] || units[unit]!.protected || units[unit]!.indices[0]! >= latestStart || units[unit]!.turn <= settings.keepFirstUserTurns) continue;
          window.push(unit);
          size += units[unit]!.tokens;
        }
        let position = 0;
        while (position < window.length && size + wanted > layout.room) {
          const turn = units[window[position]!]!.turn;
          while (position < window.length && units[window[position]!]!.turn === turn) {
            keep[window[position]!] = 0;
            size -= units[window[position]!]!.tokens;
            left += units[window[position]!]!.tokens;
            position++;
          }
        }
        if (position > 0) {
          nets.earlyCut = position;
          const failure = await loaded?.cuts.record(latestStart, wanted);
          if (failure) failures.push(failure);
        }
      }
      const net = keepLatestExchange(messages, parts, keep, left, context.budget);
      left = net.left;
      if (net.added > 0) nets.latestAnswer = net.added;

      const room = Math.min(wanted, left);
      const candidates = scored.filter((unit) => !keep[unit]);
      const picked = open && scores ? pickExcerpts(candidates, units, scores.score, room, labelTokens) : { units: [], filled: 0 };
      if (picked.filled > 0) nets.recencyFill = picked.filled;
      if (scores?.cold) nets.cold = true;

      const block = renderExcerpts(messages, units, picked.units, sessions(messages, settings.sessionHeader), room, counter);

      const output: ChatMessage[] = [];
      // Just before the latest turn (with no user message, before the last unit: never inside a tool chain).
      for (let index = 0; index < messages.length; index++) {
        if (index === latestStart && block) output.push(block);
        if (keep[parts.unitOf[index]!]) output.push(messages[index]!);
      }
      // An early cut can take the window's end with it: a breakpoint goes only on a message that is sent.
      const sent = new Set(output);
      const breakpoints = [layout.prefixEnd, layout.windowEnd].filter((message): message is ChatMessage => message !== undefined && sent.has(message));
      const info: Record<string, unknown> = { ...(scores?.info ?? {}), excerptShare: share, excerpts: picked.units.length, trimmed: layout.trimmed };
      if (gate !== undefined) info.excerptGate = Number(gate.toFixed(3));
      if (agentRun) info.agentRun = true;
      if (Object.keys(nets).length > 0) info.nets = nets;
      return { messages: output, breakpoints, failures, info };
    },
  };
}

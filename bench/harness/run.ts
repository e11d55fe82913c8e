import { messageKey, REPLY_PRIMING_TOKENS, type TokenCounter } from '../../src/tokens/counter.js';
import type { ChatMessage, ChatRequest, Messages } from '../../src/core/types.js';
import { validateRequest } from '../../src/core/validate.js';
import type { Contender } from './contenders.js';
import { billedCost, type CacheRule, type ModelPrice } from './cost.js';
import type { BenchConversation } from './loaders.js';
import { contentWords, factRetention, mean, outputText, verbatimRetention } from './metrics.js';
import { Progress } from './progress.js';
import { percentile } from './stats.js';

export interface Violation {
  contender: string;
  mode: 'qa' | 'replay';
  budget: number;
  conversation: string;
  request: number;
  problem: string;
}

const roleKey = (message: ChatMessage): string => messageKey(message);

/**
 * Correctness first: a compacted request must be valid, within budget, keep every system and
 * developer message and the last message, and keep the input's order. Returns the first problem.
 */
export function checkOutput(input: Messages, output: Messages, budget: number | undefined, counter: TokenCounter): string | undefined {
  try {
    validateRequest({ messages: output });
  } catch (error) {
    return `invalid output: ${(error as Error).message}`;
  }
  const answered = new Set(output.filter((message) => message.role === 'tool').map((message) => message.tool_call_id));
  for (const message of output) for (const call of message.tool_calls ?? []) if (!answered.has(call.id)) return `tool call ${call.id} lost its result`;
  if (budget !== undefined) {
    const tokens = counter.messages(output) + REPLY_PRIMING_TOKENS;
    if (tokens > budget) return `over budget: ${tokens} > ${budget}`;
  }
  // Messages a strategy made itself (summaries, markers) are allowed; dropping a protected
  // message or reordering is not.
  const inputKeys = new Set(input.map(roleKey));
  const kept = output.map(roleKey).filter((key) => inputKeys.has(key));
  let cursor = 0;
  for (const message of input) {
    const key = roleKey(message);
    const pinned = message.role === 'system' || message.role === 'developer' || message === input[input.length - 1];
    if (cursor < kept.length && kept[cursor] === key) cursor++;
    else if (pinned) return `dropped a protected ${message.role} message`;
  }
  if (cursor < kept.length) return 'reordered messages';
  return undefined;
}

export interface QaRow {
  contender: string;
  budget: number;
  /** '1-4' (all non-adversarial), '1'…'4', or '5' (adversarial). */
  category: string;
  items: number;
  erVerbatim: number | undefined;
  erFact: number | undefined;
  tokensAfter: number;
  msP50: number;
  msP99: number;
}

export interface QaOptions {
  budgets: readonly number[];
  model: string;
  counter: TokenCounter;
  progress?: boolean;
  /** Use at most this many QA items per conversation (evenly spread), for quick runs. */
  limit?: number;
}

interface QaSample {
  category: number;
  erVerbatim: number | undefined;
  erFact: number | undefined;
  tokens: number;
  ms: number;
}

function spread<T>(items: readonly T[], limit: number | undefined): T[] {
  if (limit === undefined || items.length <= limit) return [...items];
  const step = items.length / limit;
  return Array.from({ length: limit }, (_, index) => items[Math.floor(index * step)]!);
}

/** QA mode: history + question through each contender at each budget; evidence and fact retention. */
export async function runQa(
  conversations: readonly BenchConversation[],
  contenders: readonly Contender[],
  options: QaOptions,
  violations: Violation[],
): Promise<QaRow[]> {
  const withQa = conversations.filter((conversation) => conversation.qa && conversation.qa.length > 0);
  const total = withQa.reduce((sum, conversation) => sum + spread(conversation.qa!, options.limit).length, 0) * options.budgets.length * contenders.length;
  const progress = new Progress('bench qa', total, options.progress ?? true);
  const samples = new Map<string, QaSample[]>();
  const disqualified = new Set<string>();
  for (const conversation of withQa) {
    const fullWords = new Set(contentWords(outputText(conversation.messages)));
    const items = spread(conversation.qa!, options.limit);
    for (const contender of contenders) {
      for (const budget of options.budgets) {
        const key = `${contender.name}|${budget}`;
        const list = samples.get(key) ?? [];
        samples.set(key, list);
        for (const [index, item] of items.entries()) {
          const request: ChatRequest = { model: options.model, messages: [...conversation.messages, { role: 'user', content: item.question }] };
          const { messages, ms, repaired } = await contender.run(request, budget);
          const problem = repaired ?? checkOutput(request.messages, messages, contender.kind === 'baseline' ? undefined : budget, options.counter);
          if (problem) {
            disqualified.add(key);
            violations.push({ contender: contender.name, mode: 'qa', budget, conversation: conversation.id, request: index, problem });
          }
          const text = outputText(messages);
          list.push({
            category: item.category,
            erVerbatim: verbatimRetention(item.evidenceTexts, text),
            erFact: item.answer === undefined ? undefined : factRetention(item.answer, item.question, new Set(contentWords(text)), fullWords),
            tokens: options.counter.messages(messages) + REPLY_PRIMING_TOKENS,
            ms,
          });
          progress.tick(1, `${contender.name} @${budget}`);
        }
      }
    }
  }
  progress.finish();
  const rows: QaRow[] = [];
  for (const contender of contenders) {
    for (const budget of options.budgets) {
      const list = samples.get(`${contender.name}|${budget}`) ?? [];
      const groups: [string, QaSample[]][] = [
        ['1-4', list.filter((sample) => sample.category !== 5)],
        ...[1, 2, 3, 4, 5].map((category): [string, QaSample[]] => [String(category), list.filter((sample) => sample.category === category)]),
      ];
      for (const [category, group] of groups) {
        if (group.length === 0) continue;
        rows.push({
          contender: contender.name,
          budget,
          category,
          items: group.length,
          erVerbatim: mean(group.map((sample) => sample.erVerbatim)),
          erFact: mean(group.map((sample) => sample.erFact)),
          tokensAfter: mean(group.map((sample) => sample.tokens)) ?? 0,
          msP50: percentile(
            group.map((sample) => sample.ms),
            50,
          ),
          msP99: percentile(
            group.map((sample) => sample.ms),
            99,
          ),
        });
      }
    }
  }
  return rows;
}

export interface ReplayTurn {
  conversation: string;
  turn: number;
  contender: string;
  tokensBefore: number;
  tokensAfter: number;
  prefixTokens: number;
  ms: number;
  cache: 'bypass';
}

export interface ReplayRow {
  contender: string;
  budget: number;
  requests: number;
  tokensBefore: number;
  tokensAfter: number;
  /** Mean fraction of each request's tokens that is a prefix shared with the previous request. */
  prefixShare: number;
  /** Dollars for the same requests sent uncompacted (prompt caching counted). */
  costUncompacted: number;
  costCompacted: number;
  /** Summarizer and embedding calls the contender made (local models cost nothing). */
  costExtra: number;
  netSaving: number;
  msP50: number;
  msP99: number;
}

export interface ReplayOptions {
  budget: number;
  model: string;
  counter: TokenCounter;
  price: ModelPrice;
  cacheRule: CacheRule;
  progress?: boolean;
}

/** Tokens at the start of `current` identical, message for message, to the start of `previous`. */
export function sharedPrefixTokens(previous: Messages | undefined, current: Messages, counter: TokenCounter): number {
  if (!previous) return 0;
  let tokens = 0;
  const length = Math.min(previous.length, current.length);
  for (let index = 0; index < length; index++) {
    const a = previous[index]!;
    const b = current[index]!;
    if (a !== b && messageKey(a) !== messageKey(b)) break;
    tokens += counter.message(b);
  }
  return tokens;
}

/**
 * Replay mode: each conversation is sent turn by turn as a chat client sends it. At every user
 * turn the history so far goes through the contender; the transcript's reply is appended after.
 */
export async function runReplay(
  conversations: readonly BenchConversation[],
  contenders: readonly Contender[],
  options: ReplayOptions,
  violations: Violation[],
): Promise<{ rows: ReplayRow[]; turns: ReplayTurn[] }> {
  const userTurns = conversations.reduce((sum, conversation) => sum + conversation.messages.filter((message) => message.role === 'user').length, 0);
  const progress = new Progress('bench replay', userTurns * contenders.length, options.progress ?? true);
  const rows: ReplayRow[] = [];
  const turns: ReplayTurn[] = [];
  for (const contender of contenders) {
    const extraBefore = contender.extraCost?.() ?? 0;
    let requests = 0;
    let tokensBefore = 0;
    let tokensAfter = 0;
    let costUncompacted = 0;
    let costCompacted = 0;
    const shares: number[] = [];
    const times: number[] = [];
    for (const conversation of conversations) {
      let previousFull: Messages | undefined;
      let previousOut: Messages | undefined;
      let turn = 0;
      for (let index = 0; index < conversation.messages.length; index++) {
        if (conversation.messages[index]!.role !== 'user') continue;
        turn++;
        const history = conversation.messages.slice(0, index + 1);
        const request: ChatRequest = { model: conversation.model ?? options.model, messages: history };
        const { messages, ms, repaired } = await contender.run(request, options.budget);
        const problem = repaired ?? checkOutput(history, messages, contender.kind === 'baseline' ? undefined : options.budget, options.counter);
        if (problem)
          violations.push({ contender: contender.name, mode: 'replay', budget: options.budget, conversation: conversation.id, request: turn, problem });
        const reply = conversation.messages[index + 1];
        const outputTokens = reply && reply.role === 'assistant' ? options.counter.text(String(reply.content ?? '')) : 0;
        const before = options.counter.messages(history) + REPLY_PRIMING_TOKENS;
        const after = options.counter.messages(messages) + REPLY_PRIMING_TOKENS;
        const fullPrefix = sharedPrefixTokens(previousFull, history, options.counter);
        const prefix = sharedPrefixTokens(previousOut, messages, options.counter);
        costUncompacted += billedCost({ inputTokens: before, prefixTokens: fullPrefix, outputTokens }, options.price, options.cacheRule);
        costCompacted += billedCost({ inputTokens: after, prefixTokens: prefix, outputTokens }, options.price, options.cacheRule);
        previousFull = history;
        previousOut = messages;
        requests++;
        tokensBefore += before;
        tokensAfter += after;
        shares.push(prefix / after);
        times.push(ms);
        turns.push({
          conversation: conversation.id,
          turn,
          contender: contender.name,
          tokensBefore: before,
          tokensAfter: after,
          prefixTokens: prefix,
          ms,
          cache: 'bypass',
        });
        progress.tick(1, contender.name);
      }
    }
    rows.push({
      contender: contender.name,
      budget: options.budget,
      requests,
      tokensBefore,
      tokensAfter,
      prefixShare: mean(shares) ?? 0,
      costUncompacted,
      costCompacted,
      costExtra: (contender.extraCost?.() ?? 0) - extraBefore,
      netSaving: costUncompacted - costCompacted - ((contender.extraCost?.() ?? 0) - extraBefore),
      msP50: percentile(times, 50),
      msP99: percentile(times, 99),
    });
  }
  progress.finish();
  return { rows, turns };
}

import { withoutCacheMarkers } from '../../src/formats/explicit-breakpoints.js';
import { messageKey, REPLY_PRIMING_TOKENS, type TokenCounter } from '../../src/tokens/counter.js';
import type { ChatMessage, ChatRequest, Messages } from '../../src/core/types.js';
import { validateRequest } from '../../src/core/validate.js';
import type { Contender } from './contenders.js';
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

/** Tokens at the start of `current` identical, message for message, to the start of `previous`. */
export function sharedPrefixTokens(previous: Messages | undefined, current: Messages, counter: TokenCounter): number {
  if (!previous) return 0;
  let tokens = 0;
  const length = Math.min(previous.length, current.length);
  for (let index = 0; index < length; index++) {
    const a = previous[index]!;
    const b = current[index]!;
    if (a !== b && messageKey(withoutCacheMarkers(a)) !== messageKey(withoutCacheMarkers(b))) break;
    tokens += counter.message(b);
  }
  return tokens;
}

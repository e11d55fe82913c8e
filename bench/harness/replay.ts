import type { ChatMessage, ChatRequest, Messages } from '../../src/core/types.js';
import { REPLY_PRIMING_TOKENS, type TokenCounter } from '../../src/tokens/counter.js';
import type { Contender } from './contenders.js';
import type { BenchConversation } from './loaders.js';
import { contentWords, factRetention, outputText, verbatimRetention } from './metrics.js';
import { Progress } from './progress.js';
import { checkOutput, sharedPrefixTokens, type Violation } from './run.js';

/** One request of a replay: the conversation so far, compacted, with what its bill needs. */
export interface RequestRecord {
  conversation: string;
  turn: number;
  tokensBefore: number;
  tokensAfter: number;
  /** Tokens shared with the previous request's start, uncompacted and compacted. */
  prefixBefore: number;
  prefixAfter: number;
  /** Token offsets of the cache breakpoints, uncompacted (a client marks the end) and compacted. */
  breakpointsBefore: number[];
  breakpointsAfter: number[];
  outputTokens: number;
  ms: number;
  /** Whether the latest answer (and the message it answers) survived, where it fits in half the budget. */
  latestAnswer?: 'kept' | 'dropped';
}

/** A QA item asked at the end of its conversation's replay, with the state the replay built. */
export interface QaSample {
  conversation: string;
  category: number;
  erVerbatim: number | undefined;
  erFact: number | undefined;
  tokens: number;
  ms: number;
}

/** A request met by a fresh process (nothing embedded or summarized yet). */
export interface ColdSample {
  conversation: string;
  turn: number;
  tokensBefore: number;
  tokensAfter: number;
  /** The size the compaction could fill: the budget, or the whole request when it is smaller. */
  target: number;
  /**
   * What the same preset sent for this request in the replay, warm: its own target. A window that
   * is cut in steps leaves part of the budget free by design (that is what keeps its prefix cached),
   * warm or cold.
   */
  warmTokens: number;
  /** Whether a dropped message would have fit in what the cold request left unused of the warm one's size. */
  droppedWithRoom: boolean;
}

export interface ReplayRun {
  contender: string;
  budget: number;
  requests: RequestRecord[];
  qa: QaSample[];
  cold: ColdSample[];
  /** Dollars the contender spent on its own model calls during the replay (an LLM summarizer). */
  extraCost: number;
}

export interface ReplayOptions {
  budgets: readonly number[];
  model: string;
  counter: TokenCounter;
  /** Ask each conversation's QA items at the end of its replay. */
  qa: boolean;
  /** Requests per conversation met by a fresh process (evenly spread over its turns). */
  coldTurns: number;
  progress?: boolean;
}

/** Token offsets at which messages end (priming excluded). */
function offsetsAfter(messages: Messages, indices: readonly number[], counter: TokenCounter): number[] {
  const offsets: number[] = [];
  let tokens = 0;
  const wanted = new Set(indices);
  messages.forEach((message, index) => {
    tokens += counter.message(message);
    if (wanted.has(index)) offsets.push(tokens);
  });
  return offsets;
}

/** The latest assistant message before the last user message, and the user message it answers. */
function latestExchange(messages: Messages): ChatMessage[] {
  let latestUser = -1;
  for (let index = messages.length - 1; index >= 0 && latestUser < 0; index--) if (messages[index]!.role === 'user') latestUser = index;
  let answer = -1;
  for (let index = latestUser - 1; index >= 0 && answer < 0; index--) if (messages[index]!.role === 'assistant') answer = index;
  if (answer < 0) return [];
  let asked = -1;
  for (let index = answer - 1; index >= 0 && asked < 0; index--) if (messages[index]!.role === 'user') asked = index;
  return asked < 0 ? [messages[answer]!] : [messages[asked]!, messages[answer]!];
}

/** Whether each message survived the compaction (as itself, or its text verbatim, for strategies that quote). */
function survived(message: ChatMessage, output: Messages, text: string): boolean {
  return output.includes(message) || (typeof message.content === 'string' && message.content.length > 0 && text.includes(message.content));
}

/**
 * Replay: each conversation is sent turn by turn as a chat client sends it, at each budget, on the
 * path the contender is set up for. Between requests the contender's background work may finish
 * (`settle`), as it would while a person types, but nothing of the request being compacted is
 * done ahead. At the end of a conversation its QA items are asked on the state the replay built,
 * and a few of its requests are met by a fresh process (cold).
 */
export async function runReplays(
  conversations: readonly BenchConversation[],
  contenders: readonly Contender[],
  options: ReplayOptions,
  violations: Violation[],
): Promise<ReplayRun[]> {
  const counter = options.counter;
  const userTurns = conversations.reduce((sum, conversation) => sum + conversation.messages.filter((message) => message.role === 'user').length, 0);
  const qaItems = options.qa ? conversations.reduce((sum, conversation) => sum + (conversation.qa?.length ?? 0), 0) : 0;
  const progress = new Progress('bench replay', (userTurns + qaItems) * contenders.length * options.budgets.length, options.progress ?? true);
  const runs: ReplayRun[] = [];
  for (const budget of options.budgets) {
    for (const template of contenders) {
      // Each budget starts from a fresh process, so no budget's replay warms another's.
      const contender = template.fresh?.() ?? template;
      const run: ReplayRun = { contender: contender.name, budget, requests: [], qa: [], cold: [], extraCost: 0 };
      const spentBefore = contender.extraCost?.() ?? 0;
      runs.push(run);
      const limit = contender.kind === 'baseline' ? undefined : budget;
      for (const conversation of conversations) {
        let previousFull: Messages | undefined;
        let previousOut: Messages | undefined;
        let turn = 0;
        const turnsOf = conversation.messages.filter((message) => message.role === 'user').length;
        const coldAt = new Set(
          Array.from({ length: Math.min(options.coldTurns, turnsOf) }, (_, index) =>
            Math.round(((index + 1) * turnsOf) / Math.min(options.coldTurns, turnsOf)),
          ),
        );
        for (let index = 0; index < conversation.messages.length; index++) {
          if (conversation.messages[index]!.role !== 'user') continue;
          turn++;
          const history = conversation.messages.slice(0, index + 1);
          const request: ChatRequest = { model: conversation.model ?? options.model, messages: history };
          await contender.settle?.();
          const result = await contender.run(request, budget);
          const messages = result.messages;
          const problem = result.repaired ?? checkOutput(history, messages, limit, counter);
          if (problem) violations.push({ contender: contender.name, mode: 'replay', budget, conversation: conversation.id, request: turn, problem });
          const reply = conversation.messages[index + 1];
          const before = counter.messages(history) + REPLY_PRIMING_TOKENS;
          const after = counter.messages(messages) + REPLY_PRIMING_TOKENS;
          const record: RequestRecord = {
            conversation: conversation.id,
            turn,
            tokensBefore: before,
            tokensAfter: after,
            prefixBefore: sharedPrefixTokens(previousFull, history, counter),
            prefixAfter: sharedPrefixTokens(previousOut, messages, counter),
            breakpointsBefore: offsetsAfter(history, [history.length - 1], counter),
            breakpointsAfter: offsetsAfter(messages, result.breakpoints ?? [messages.length - 1], counter),
            outputTokens: reply && reply.role === 'assistant' ? counter.text(String(reply.content ?? '')) : 0,
            ms: result.ms,
          };
          const exchange = latestExchange(history);
          if (limit !== undefined && exchange.length > 0 && counter.messages(exchange) <= budget / 2 && before > budget) {
            const text = outputText(messages);
            record.latestAnswer = exchange.every((message) => survived(message, messages, text)) ? 'kept' : 'dropped';
          }
          run.requests.push(record);
          previousFull = history;
          previousOut = messages;
          progress.tick(1, `${contender.name} @${budget}`);

          if (coldAt.has(turn) && contender.fresh && limit !== undefined && before > budget) {
            // A fresh process meets the conversation here: nothing embedded or memoized.
            const cold = await contender.fresh().run(request, budget);
            const coldAfter = counter.messages(cold.messages) + REPLY_PRIMING_TOKENS;
            const coldText = outputText(cold.messages);
            const free = after - coldAfter;
            // A message quoted in an excerpts block is not dropped.
            const droppedWithRoom = history.some(
              (message) => message.role !== 'tool' && !message.tool_calls && counter.message(message) <= free && !survived(message, cold.messages, coldText),
            );
            run.cold.push({
              conversation: conversation.id,
              turn,
              tokensBefore: before,
              tokensAfter: coldAfter,
              target: Math.min(budget, before),
              warmTokens: after,
              droppedWithRoom,
            });
          }
        }
        if (options.qa && conversation.qa) {
          const fullWords = new Set(contentWords(outputText(conversation.messages)));
          for (const item of conversation.qa) {
            await contender.settle?.();
            const request: ChatRequest = {
              model: conversation.model ?? options.model,
              messages: [...conversation.messages, { role: 'user', content: item.question }],
            };
            const result = await contender.run(request, budget);
            const text = outputText(result.messages);
            run.qa.push({
              conversation: conversation.id,
              category: item.category,
              erVerbatim: verbatimRetention(item.evidenceTexts, text),
              erFact: item.answer === undefined ? undefined : factRetention(item.answer, item.question, new Set(contentWords(text)), fullWords),
              tokens: counter.messages(result.messages) + REPLY_PRIMING_TOKENS,
              ms: result.ms,
            });
            progress.tick(1, `${contender.name} @${budget} QA`);
          }
        }
      }
      run.extraCost = (contender.extraCost?.() ?? 0) - spentBefore;
    }
  }
  progress.finish();
  return runs;
}

export interface LatencyRow {
  contender: string;
  rule: string;
  budget: number;
  messages: number;
  requests: number;
  msP50: number;
  msP99: number;
}

/**
 * Added latency on a long history, warm: a fresh process meets the longest conversation, lets its
 * background work finish (the history embedded, as on a server that has seen the conversation
 * before), then answers new questions one after another, each a text it has never embedded, so
 * the query is encoded on the request path as on a server.
 */
export async function measureLatency(
  conversations: readonly BenchConversation[],
  contenders: readonly Contender[],
  budget: number,
  model: string,
  rule: string,
  requests = 40,
): Promise<LatencyRow[]> {
  const longest = [...conversations].sort((a, b) => b.messages.length - a.messages.length)[0];
  if (!longest) return [];
  const questions = (longest.qa ?? []).map((item) => item.question);
  const rows: LatencyRow[] = [];
  for (const template of contenders) {
    if (template.kind !== 'preset') continue;
    const contender = template.fresh?.() ?? template;
    const history = longest.messages;
    await contender.run({ model, messages: [...history, { role: 'user', content: 'Warming up: what did we talk about?' }] }, budget);
    await contender.settle?.();
    const times: number[] = [];
    for (let index = 0; index < requests; index++) {
      const question = `${questions[index % Math.max(1, questions.length)] ?? 'What did we decide?'} (${index + 1})`;
      const result = await contender.run({ model, messages: [...history, { role: 'user', content: question }] }, budget);
      times.push(result.ms);
      await contender.settle?.();
    }
    times.sort((a, b) => a - b);
    rows.push({
      contender: contender.name,
      rule,
      budget,
      messages: history.length + 1,
      requests,
      msP50: times[Math.floor(times.length / 2)]!,
      msP99: times[Math.min(times.length - 1, Math.ceil(times.length * 0.99) - 1)]!,
    });
  }
  return rows;
}

/**
 * Overhead bench: how long compaction takes, cold and warm, against LangChain's trimMessages.
 * Prints figures; asserts nothing. Run: npm run bench:overhead
 */
import { AIMessage, HumanMessage, SystemMessage, trimMessages, type BaseMessage } from '@langchain/core/messages';
import { readFileSync } from 'node:fs';
import { createCompactor } from '../src/compose/compactor.js';
import { locomoMessages, parseLocomo } from './datasets/locomo.js';
import { shippedLocomoPath } from './paths.js';
import { builtinTokenizer, type TextTokenizer } from '../src/tokens/tokenizer.js';
import type { ChatMessage, ChatRequest } from '../src/core/types.js';
import { machine, markdownTable, ms, percentile, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

const SIZES = [50, 200, 1000];
const BUDGET = 4000;
const COLD_RUNS = Number(process.env.COLD_RUNS ?? 30);
const WARM_RUNS = Number(process.env.WARM_RUNS ?? 300);
const TRIM_RUNS = Number(process.env.TRIM_RUNS ?? 20);

function history(size: number): ChatMessage[] {
  const conversations = parseLocomo(JSON.parse(readFileSync(shippedLocomoPath(), 'utf8')));
  const turns = conversations.flatMap((conversation) => locomoMessages(conversation).messages.slice(1));
  const messages: ChatMessage[] = [{ role: 'system', content: 'You are a helpful assistant with the record of long conversations.' }];
  for (let index = 0; messages.length < size - 1; index++) messages.push(turns[index % turns.length]!);
  messages.push({ role: 'user', content: 'What did we decide about the trip?' });
  return messages;
}

const now = () => performance.now();

// Cold runs must not see text the process has already tokenized, or tokenizer-internal caches
// would make them look warm: every cold run gets its own variant of each message.
function variant(messages: readonly ChatMessage[], run: number): ChatMessage[] {
  return messages.map((message) => ({ ...message, content: `${String(message.content)} (${run})` }));
}

async function time(runs: number, prepare: (run: number) => unknown, body: (input: never) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let run = 0; run < runs; run++) {
    const input = prepare(run);
    const started = now();
    await body(input as never);
    samples.push(now() - started);
  }
  return samples;
}

function toLangChain(messages: readonly ChatMessage[]): BaseMessage[] {
  return messages.map((message) =>
    message.role === 'system'
      ? new SystemMessage(String(message.content))
      : message.role === 'user'
        ? new HumanMessage(String(message.content))
        : new AIMessage(String(message.content)),
  );
}

// The counter a LangChain user would pass: tiktoken over each message's text, plus the same
// per-message framing our counter uses, so both sides cut at the same budget.
function langChainCounter(tokenizer: TextTokenizer) {
  return (messages: BaseMessage[]): number => {
    let total = 3;
    for (const message of messages) {
      const role = message.getType() === 'human' ? 'user' : message.getType() === 'ai' ? 'assistant' : 'system';
      total += 3 + tokenizer.count(role) + tokenizer.count(String(message.content));
    }
    return total;
  };
}

async function main(): Promise<void> {
  process.stderr.write(`overhead bench: ${machine()}\n`);
  // Tokenizer load (first use in a process), for each backend.
  const loads: string[][] = [['backend', 'load o200k_base (ms)', 'cold compaction of 1000 msgs, p50 (ms)']];
  for (const backend of ['js-tiktoken', 'gpt-tokenizer'] as const) {
    const started = now();
    await builtinTokenizer(backend)('o200k_base');
    const load = now() - started;
    const messages = history(1000);
    const cold = await time(
      COLD_RUNS,
      (run) => ({
        compactor: createCompactor({ maxInputTokens: BUDGET, strategy: 'truncate', tokenizer: backend }),
        body: { model: 'gpt-4o', messages: variant(messages, 1000 + run) },
      }),
      ({ compactor, body }: { compactor: ReturnType<typeof createCompactor>; body: ChatRequest }) => compactor.compact(body),
    );
    loads.push([backend, ms(load), ms(percentile(cold, 50))]);
  }

  const tokenizer = await builtinTokenizer('js-tiktoken')('o200k_base');
  const rows: string[][] = [['messages', 'cold p50', 'cold p99', 'warm p50', 'warm p99', 'trimMessages p50', 'trimMessages p99', 'cold/warm', 'trim/warm']];
  for (const size of SIZES) {
    process.stderr.write(`  ${size} messages…\n`);
    const messages = history(size);
    const request: ChatRequest = { model: 'gpt-4o', messages };
    // Cold: a fresh compactor (empty memo) sees a history whose text is new to the process.
    const cold = await time(
      COLD_RUNS,
      (run) => ({ compactor: createCompactor({ maxInputTokens: BUDGET, strategy: 'truncate' }), body: { ...request, messages: variant(messages, run) } }),
      ({ compactor, body }: { compactor: ReturnType<typeof createCompactor>; body: ChatRequest }) => compactor.compact(body),
    );
    // Warm: the next turn resends the same history (freshly parsed JSON) plus one new message.
    const compactor = createCompactor({ maxInputTokens: BUDGET, strategy: 'truncate' });
    await compactor.compact(structuredClone(request));
    const warm = await time(
      WARM_RUNS,
      (run) => ({
        ...structuredClone(request),
        messages: [...structuredClone(messages), { role: 'assistant', content: `new reply number ${run}` }, { role: 'user', content: `follow-up ${run}?` }],
      }),
      (body: ChatRequest) => compactor.compact(body),
    );
    const langchain = toLangChain(messages);
    const counter = langChainCounter(tokenizer);
    const trim = await time(
      TRIM_RUNS,
      () => langchain,
      (input: BaseMessage[]) => trimMessages(input, { maxTokens: BUDGET, strategy: 'last', tokenCounter: counter, includeSystem: true, startOn: 'human' }),
    );
    const w = percentile(warm, 50);
    rows.push([
      String(size),
      ms(percentile(cold, 50)),
      ms(percentile(cold, 99)),
      ms(w),
      ms(percentile(warm, 99)),
      ms(percentile(trim, 50)),
      ms(percentile(trim, 99)),
      `${(percentile(cold, 50) / w).toFixed(1)}×`,
      `${(percentile(trim, 50) / w).toFixed(1)}×`,
    ]);
  }
  const header = `${machine()}\nbudget ${BUDGET} tokens (gpt-4o, o200k_base); cold ${COLD_RUNS} runs, warm ${WARM_RUNS} runs, trimMessages ${TRIM_RUNS} runs; times in ms`;
  console.log(header);
  console.log('\nTokenizer backends');
  console.log(table(loads));
  console.log('\nCompaction (truncate) vs LangChain trimMessages');
  console.log(table(rows));
  if (studyFlags('bench:overhead', {}).md) {
    console.log('\n<!-- markdown -->');
    console.log(markdownTable(loads));
    console.log();
    console.log(markdownTable(rows));
  }
}

runStudy('bench:overhead', main);

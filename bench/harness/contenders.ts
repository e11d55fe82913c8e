import { createCompactor, type Compactor } from '../../src/core/compactor.js';
import { createEmbeddingCache } from '../../src/embedders/memo.js';
import type { CompactionStats } from '../../src/core/stats.js';
import type { TokenCounter } from '../../src/tokens/counter.js';
import type { ChatMessage, ChatRequest } from '../../src/core/types.js';

export interface ContenderRun {
  messages: ChatMessage[];
  ms: number;
  failures: number;
  /**
   * Set when the compactor's guard had to repair the strategy's output: the guard is a safety net,
   * so a preset that leans on it is disqualified, as if it had broken the invariant itself.
   */
  repaired?: string;
}

/** Something the bench compares: no compaction, one of our presets, or a peer. */
export interface Contender {
  readonly name: string;
  readonly kind: 'baseline' | 'preset' | 'peer';
  run(request: ChatRequest, budget: number): Promise<ContenderRun>;
  /** Dollars spent so far on the contender's own model calls (summarizer, embeddings). */
  extraCost?(): number;
}

/** A guard repair, as a bench violation. */
export function guardProblem(stats: CompactionStats): { repaired?: string } {
  if (stats.guard.repaired === 0 && stats.guard.violation === undefined) return {};
  return { repaired: `the guard repaired the output (${stats.guard.violation ?? `${stats.guard.repaired} messages`})` };
}

export function noCompaction(): Contender {
  return { name: 'none', kind: 'baseline', run: async (request) => ({ messages: request.messages, ms: 0, failures: 0 }) };
}

/**
 * One of our presets; one compactor per budget, reused so memoized work is shared across requests.
 * Embedding deadlines are lifted so results do not depend on the machine's speed: the bench
 * measures retention with every vector available, as on warm traffic. Each preset has its own
 * embedding memo, shared by its budgets, so its ms figures include embedding what it sees,
 * whichever preset ran first.
 */
export function presetContender(preset: string): Contender {
  const compactors = new Map<number, Compactor<false>>();
  const embeddings = createEmbeddingCache();
  return {
    name: preset,
    kind: 'preset',
    async run(request, budget) {
      let compactor = compactors.get(budget);
      if (!compactor) {
        compactor = createCompactor({
          maxInputTokens: budget,
          strategy: preset,
          onBudgetUnreachable: 'pass-through',
          presetOptions: { relevance: { embedTimeoutMs: 600_000, awaitDocuments: true, embeddings }, summarize: { mode: 'inline', inlineTimeoutMs: 600_000 } },
        });
        compactors.set(budget, compactor);
      }
      const started = performance.now();
      const { request: output, stats } = await compactor.compact(request);
      return { messages: output.messages, ms: performance.now() - started, failures: stats.failures.length, ...guardProblem(stats) };
    },
  };
}

/**
 * LangChain's `trimMessages` (the real `@langchain/core`), strategy "last", keeping the system
 * prompt and starting on a human message, at the same budget and with the same memoized counter.
 */
export async function trimMessagesContender(counter: TokenCounter): Promise<Contender> {
  const { AIMessage, HumanMessage, SystemMessage, ToolMessage, trimMessages } = await import('@langchain/core/messages');
  type Base = import('@langchain/core/messages').BaseMessage;
  const roleOf: Record<string, ChatMessage['role']> = { human: 'user', ai: 'assistant', system: 'system', tool: 'tool', developer: 'developer' };
  const toChat = (message: Base): ChatMessage => {
    const chat: ChatMessage = { role: roleOf[message.getType()] ?? 'user', content: message.content as string };
    if (message instanceof ToolMessage) chat.tool_call_id = message.tool_call_id;
    const calls = (message as InstanceType<typeof AIMessage>).tool_calls;
    if (message instanceof AIMessage && calls && calls.length > 0) {
      chat.tool_calls = calls.map((call) => ({ id: call.id ?? '', type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }));
    }
    return chat;
  };
  const toLangChain = (message: ChatMessage): Base => {
    const content = typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? '');
    switch (message.role) {
      case 'system':
      case 'developer':
        return new SystemMessage(content);
      case 'assistant':
        return new AIMessage({
          content,
          tool_calls: (message.tool_calls ?? []).map((call) => ({
            id: call.id,
            name: call.function.name,
            args: JSON.parse(call.function.arguments || '{}') as Record<string, unknown>,
            type: 'tool_call' as const,
          })),
        });
      case 'tool':
        return new ToolMessage({ content, tool_call_id: message.tool_call_id ?? '' });
      default:
        return new HumanMessage(content);
    }
  };
  const memo = new WeakMap<object, number>();
  const tokenCounter = (messages: Base[]): number => {
    let total = 3;
    for (const message of messages) {
      let count = memo.get(message);
      if (count === undefined) {
        count = counter.message(toChat(message));
        memo.set(message, count);
      }
      total += count;
    }
    return total;
  };
  return {
    name: 'trimMessages',
    kind: 'peer',
    async run(request, budget) {
      const input = request.messages.map(toLangChain);
      const started = performance.now();
      const trimmed = (await trimMessages(input, { maxTokens: budget, strategy: 'last', tokenCounter, includeSystem: true, startOn: 'human' })) as Base[];
      const ms = performance.now() - started;
      // Map back to the original message objects (trimMessages keeps whole messages, in order).
      const messages: ChatMessage[] = [];
      let cursor = 0;
      for (const message of trimmed) {
        const chat = toChat(message);
        const same = (original: ChatMessage) =>
          (original.role === 'developer' ? 'system' : original.role) === chat.role &&
          (typeof original.content === 'string' ? original.content : JSON.stringify(original.content ?? '')) === chat.content;
        let found = cursor;
        while (found < request.messages.length && !same(request.messages[found]!)) found++;
        if (found < request.messages.length) {
          messages.push(request.messages[found]!);
          cursor = found + 1;
        } else messages.push(chat);
      }
      return { messages, ms, failures: 0 };
    },
  };
}

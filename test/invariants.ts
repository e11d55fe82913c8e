import { CompactorError } from '../src/core/errors.js';
import type { Strategy } from '../src/core/strategy.js';
import type { ChatMessage, Messages } from '../src/core/types.js';
import { validateRequest } from '../src/core/validate.js';
import { createCompactor } from '../src/index.js';
import { deepFreeze, strategyContext, wordTokenizer } from '../src/testing/index.js';

/**
 * The invariants every strategy must keep by itself, checked on its own output (not on what the
 * guard made of it). Written independently of the guard: it partitions the input itself and counts
 * with the same word tokenizer.
 */
export async function strategyViolation(make: () => Strategy, input: ChatMessage[], budget: number): Promise<string | undefined> {
  const request = deepFreeze({ model: 'gpt-4o', messages: input });
  const strategy = make();
  const context = await strategyContext(request, { budget });
  const counter = context.counter;
  const fits = context.fixedTokens + counter.messages(protectedIndices(input).map((index) => input[index]!)) <= budget;
  let output: Messages;
  let rewrites: ReadonlyMap<ChatMessage, ChatMessage> | undefined;
  try {
    ({ messages: output, rewrites } = await strategy.apply(request.messages, context));
  } catch (error) {
    return `threw: ${CompactorError.isInstance(error) ? error.code : (error as Error).message}`;
  }
  const problem = outputViolation(input, output, budget, fits, (messages) => context.fixedTokens + counter.messages(messages), rewrites);
  if (problem) return problem;
  // Idempotent: compacting an output that fits the budget again changes nothing. (An output over
  // it, where even the core does not fit, may be cut further: the guard refuses or passes it on.)
  if (context.fixedTokens + counter.messages(output) > budget) return undefined;
  const again = await make().apply(deepFreeze([...output]), await strategyContext({ model: 'gpt-4o', messages: [...output] }, { budget }));
  if (again.messages.length !== output.length || again.messages.some((message, index) => JSON.stringify(message) !== JSON.stringify(output[index])))
    return 'not idempotent';
  return undefined;
}

/** System and developer messages, and everything from the latest user message on (with none, the last assistant message and its results). */
export function protectedIndices(messages: readonly ChatMessage[]): number[] {
  let from = messages.findLastIndex((message) => message.role === 'user');
  if (from < 0) {
    from = messages.length - 1;
    while (from > 0 && (messages[from]!.role === 'tool' || messages[from]!.role === 'function')) from--;
  }
  return messages.flatMap((message, index) => (message.role === 'system' || message.role === 'developer' || index >= from ? [index] : []));
}

/** Each assistant message that calls tools (or a legacy function), with the indices of its results. */
export function toolUnits(messages: readonly ChatMessage[]): number[][] {
  const units: number[][] = [];
  messages.forEach((message, index) => {
    if (message.tool_calls?.length) {
      const ids = new Set(message.tool_calls.map((call) => call.id));
      units.push([index, ...messages.flatMap((other, at) => (at > index && other.role === 'tool' && ids.has(String(other.tool_call_id)) ? [at] : []))]);
    } else if (message.function_call) {
      const unit = [index];
      for (let at = index + 1; at < messages.length && messages[at]!.role === 'function'; at++) unit.push(at);
      units.push(unit);
    }
  });
  return units;
}

/** The first invariant `output` breaks, or undefined. */
export function outputViolation(
  input: Messages,
  output: Messages,
  budget: number,
  fits: boolean,
  tokens: (messages: Messages) => number,
  rewrites?: ReadonlyMap<ChatMessage, ChatMessage>,
): string | undefined {
  const position = new Map<ChatMessage, number>();
  input.forEach((message, index) => {
    position.set(message, index);
  });
  const kept = new Set<number>();
  let last = -1;
  const ids = (message: ChatMessage) => JSON.stringify([message.role, message.tool_call_id, message.name, (message.tool_calls ?? []).map((call) => call.id)]);
  for (const message of output) {
    const original = rewrites?.get(message);
    // A rewritten message (a cleared or cut tool result) stands for its original: same role, same ids.
    if (original !== undefined && ids(original) !== ids(message)) return 'rewrote a message’s role or ids';
    const index = position.get(original ?? message);
    if (index === undefined) {
      // A message of the strategy's own (a summary, a marker): never a tool message or a call.
      if (message.role === 'tool' || message.role === 'function' || message.tool_calls !== undefined || message.function_call !== undefined)
        return 'made a tool message of its own';
      continue;
    }
    if (kept.has(index)) return 'kept a message twice';
    if (index < last) return 'reordered messages';
    kept.add(index);
    last = index;
  }
  // An older exchange of the current turn (before its latest assistant message) may go whole.
  const latestUser = input.findLastIndex((message) => message.role === 'user');
  const latestAssistant = input.findLastIndex((message, index) => index > latestUser && message.role === 'assistant');
  const units = toolUnits(input);
  const olderExchange = (index: number) => {
    const unit = units.find((members) => members.includes(index));
    const head = unit ? unit[0]! : index;
    return latestUser >= 0 && head > latestUser && head < latestAssistant && input[head]!.role === 'assistant';
  };
  for (const index of protectedIndices(input)) if (!kept.has(index) && !olderExchange(index)) return `dropped a protected ${input[index]!.role} message`;
  for (const unit of toolUnits(input)) {
    const present = unit.filter((index) => kept.has(index)).length;
    if (present > 0 && present < unit.length) return 'split a tool-call unit';
  }
  try {
    validateRequest({ messages: [...output] });
  } catch (error) {
    return `invalid output: ${CompactorError.isInstance(error) ? `${error.code} at ${error.pointer}` : String(error)}`;
  }
  if (fits && tokens(output) > budget) return `over budget: ${tokens(output)} > ${budget}`;
  return undefined;
}

/** Through the compactor: the guard must have had nothing to repair. */
export async function guardRepair(make: () => Strategy, input: ChatMessage[], budget: number): Promise<string | undefined> {
  const compactor = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, strategy: make() });
  try {
    const { stats } = await compactor.compact(deepFreeze({ model: 'gpt-4o', messages: input }));
    if (stats.guard.repaired > 0 || stats.guard.violation !== undefined || stats.guard.droppedForBudget > 0)
      return `guard repaired ${JSON.stringify(stats.guard)}`;
  } catch (error) {
    if (CompactorError.isInstance(error) && error.code === 'budget.unreachable') return undefined;
    throw error;
  }
  return undefined;
}

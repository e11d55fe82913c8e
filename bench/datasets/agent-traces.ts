/**
 * The agent runs the bench replays (bench/data/agent-traces, see its README): long runs in the
 * OpenAI shape (mini-swe-agent) and the Anthropic shape (Moatless), and short ones (SWE-agent,
 * ToolBench, OpenHands) in the OpenAI shape. One request per assistant step: the messages before it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VALUE } from '../../src/core/clearing.js';
import type { ChatMessage } from '../../src/core/types.js';
import { type AnthropicMessage, fromAnthropic } from '../../src/formats/anthropic/index.js';
import { fromResponses, type ResponsesItem, type ResponsesRequest } from '../../src/formats/responses/index.js';
import { messageText } from '../../src/text/message-text.js';

export type RunGroup = 'long' | 'short';

export interface AgentStep {
  /** The request as its agent sent it (wire shape), without model. */
  body: { messages: unknown[]; system?: string };
  /** The same request in canonical messages, for counting and billing. */
  canonical: ChatMessage[];
  /** Values the step's own tool call passes back that the history holds (ids, numbers, paths). */
  values: string[];
}

export interface AgentRun {
  source: string;
  name: string;
  group: RunGroup;
  format: 'openai' | 'anthropic';
  steps: AgentStep[];
}

/** Text of a canonical message with its tool calls' arguments. */
export function fullText(message: ChatMessage): string {
  return `${messageText(message)}\n${(message.tool_calls ?? []).map((call) => call.function.arguments).join('\n')}`;
}

/** The values of `args` worth checking: at least 4 characters, and present in the history. */
export function neededValues(args: string, history: string): string[] {
  return [
    ...new Set([...args.matchAll(VALUE)].map((match) => match[0].replace(/[.:,-]+$/, '')).filter((value) => value.length >= 4 && history.includes(value))),
  ];
}

export function canonicalOf(format: 'openai' | 'anthropic' | 'responses', body: { messages?: unknown[]; system?: string; input?: unknown }): ChatMessage[] {
  if (format === 'responses') return fromResponses(body as ResponsesRequest).canonical.messages;
  if (format === 'openai') return body.messages as ChatMessage[];
  return fromAnthropic({ model: 'claude', max_tokens: 1, ...body, messages: body.messages as AnthropicMessage[] }).canonical.messages;
}

function stepsOf(format: 'openai' | 'anthropic', messages: unknown[]): AgentStep[] {
  const steps: AgentStep[] = [];
  for (let index = 1; index < messages.length; index++) {
    const message = messages[index] as { role: string; content?: unknown; tool_calls?: { function: { arguments: string } }[] };
    if (message.role !== 'assistant') continue;
    const body = { messages: messages.slice(0, index) };
    const canonical = canonicalOf(format, body);
    if (!canonical.some((entry) => entry.role === 'user')) continue;
    const args =
      format === 'openai'
        ? (message.tool_calls ?? []).map((call) => call.function.arguments).join(' ')
        : (Array.isArray(message.content) ? message.content : [])
            .filter((block: { type?: string }) => block.type === 'tool_use')
            .map((block: { input?: unknown }) => JSON.stringify(block.input ?? {}))
            .join(' ');
    const history = canonical.map(fullText).join('\n');
    steps.push({ body, canonical, values: args ? neededValues(args, history) : [] });
  }
  return steps;
}

function readRuns(dir: string, group: RunGroup, format: 'openai' | 'anthropic', fallbackSource: string): AgentRun[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const record = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { source?: string; messages: unknown[] };
      return { source: record.source ?? fallbackSource, name: file.replace(/\.json$/, ''), group, format, steps: stepsOf(format, record.messages) };
    })
    .filter((run) => run.steps.length > 0);
}

/** Every run under `root` (bench/data/agent-traces or a folder of the same layout). */
export function loadAgentRuns(root: string): AgentRun[] {
  return [
    ...readRuns(join(root, 'mini-swe-agent'), 'long', 'openai', 'mini-swe-agent'),
    ...readRuns(join(root, 'moatless'), 'long', 'anthropic', 'moatless'),
    ...readRuns(join(root, 'short'), 'short', 'openai', 'short'),
  ];
}

/**
 * A step's canonical messages as the OpenAI Responses API carries them: the first system prompt as
 * `instructions`, each message an item, an assistant turn's tool calls as `function_call` items and
 * the results as `function_call_output` items. The agent suite replays every run in this shape too.
 */
export function responsesBody(messages: readonly ChatMessage[]): { instructions?: string; input: ResponsesItem[] } {
  const text = (content: ChatMessage['content']): string =>
    typeof content === 'string'
      ? content
      : Array.isArray(content)
        ? content.map((part) => (part.type === 'text' ? String(part.text) : JSON.stringify(part))).join('\n')
        : '';
  const input: ResponsesItem[] = [];
  let instructions: string | undefined;
  messages.forEach((message, index) => {
    if (index === 0 && message.role === 'system') {
      instructions = text(message.content);
      return;
    }
    if (message.role === 'assistant') {
      const said = text(message.content);
      if (said !== '' || !message.tool_calls?.length)
        input.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: said, annotations: [] }] });
      for (const call of message.tool_calls ?? [])
        input.push({ type: 'function_call', call_id: call.id, name: call.function.name, arguments: call.function.arguments });
    } else if (message.role === 'tool') input.push({ type: 'function_call_output', call_id: String(message.tool_call_id), output: text(message.content) });
    else input.push({ role: message.role, content: text(message.content) });
  });
  return instructions === undefined ? { input } : { instructions, input };
}

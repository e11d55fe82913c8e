/**
 * The agent runs the bench replays (bench/data/agent-traces, see its README): long runs in the
 * OpenAI shape (mini-swe-agent) and the Anthropic shape (Moatless), and short ones (SWE-agent,
 * ToolBench, OpenHands) in the OpenAI shape. One request per assistant step: the messages before it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VALUE } from '../../src/core/clearing.js';
import type { ChatMessage } from '../../src/core/types.js';
import { fromAnthropic, type AnthropicMessage } from '../../src/formats/anthropic/index.js';
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

export function canonicalOf(format: 'openai' | 'anthropic', body: { messages: unknown[]; system?: string }): ChatMessage[] {
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

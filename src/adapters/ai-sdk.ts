import { defineOptions, rules } from '../core/define-options.js';
import type {
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3FinishReason,
  LanguageModelV3GenerateResult,
  LanguageModelV3Message,
  LanguageModelV3Middleware,
  LanguageModelV3Prompt,
  LanguageModelV3StreamPart,
  LanguageModelV3Text,
  LanguageModelV3ToolCall,
} from '@ai-sdk/provider';
import type { CompactionStats } from '../core/stats.js';
import type { ChatMessage, ContentPart } from '../core/types.js';
import type { CachedResponse } from '../formats/wire-format.js';
import { compactorOf, prepare, type CompactorSource, type Prepared } from './exchange.js';

export interface AiSdkCompactionOptions {
  /**
   * The tenant of a call: it scopes the response cache.
   * @default undefined (no tenant)
   */
  tenant?: (params: LanguageModelV3CallOptions) => string | undefined;
  /**
   * The route of a call, passed to strategies and the cache and used by route tables.
   * @default 'ai-sdk'
   */
  route?: (params: LanguageModelV3CallOptions) => string;
  /** Called with the stats of every compaction (for logs and metrics). */
  onStats?: (stats: CompactionStats) => void;
}

/** Call settings that change the answer, so they are part of a cached answer's scope. */
const SCOPED_SETTINGS = [
  'temperature',
  'topP',
  'topK',
  'seed',
  'maxOutputTokens',
  'stopSequences',
  'presencePenalty',
  'frequencyPenalty',
  'responseFormat',
  'toolChoice',
] as const;

function toCanonical(prompt: LanguageModelV3Prompt): { messages: ChatMessage[]; origin: Map<ChatMessage, number> } {
  const messages: ChatMessage[] = [];
  const origin = new Map<ChatMessage, number>();
  const add = (message: ChatMessage, index: number) => {
    messages.push(message);
    origin.set(message, index);
  };
  prompt.forEach((message, index) => {
    switch (message.role) {
      case 'system':
        add({ role: 'system', content: message.content }, index);
        break;
      case 'user':
        add(
          {
            role: 'user',
            content: message.content.map(
              (part): ContentPart =>
                part.type === 'text' ? { type: 'text', text: part.text } : { type: part.type, mediaType: part.mediaType, filename: part.filename },
            ),
          },
          index,
        );
        break;
      case 'assistant': {
        const text = message.content.flatMap((part) => (part.type === 'text' || part.type === 'reasoning' ? [part.text] : [])).join('\n');
        const calls = message.content.flatMap((part) =>
          part.type === 'tool-call'
            ? [
                {
                  id: part.toolCallId,
                  type: 'function',
                  function: { name: part.toolName, arguments: typeof part.input === 'string' ? part.input : JSON.stringify(part.input ?? {}) },
                },
              ]
            : [],
        );
        const canonical: ChatMessage = { role: 'assistant', content: text.length > 0 ? text : null };
        if (calls.length > 0) canonical.tool_calls = calls;
        add(canonical, index);
        break;
      }
      case 'tool':
        for (const part of message.content) {
          if (part.type !== 'tool-result') continue;
          add({ role: 'tool', tool_call_id: part.toolCallId, content: JSON.stringify(part.output) }, index);
        }
        break;
    }
  });
  return { messages, origin };
}

function fromCanonical(compacted: readonly ChatMessage[], origin: Map<ChatMessage, number>, prompt: LanguageModelV3Prompt): LanguageModelV3Prompt {
  const result: LanguageModelV3Message[] = [];
  const seen = new Set<number>();
  for (const message of compacted) {
    const index = origin.get(message);
    if (index !== undefined) {
      if (!seen.has(index)) result.push(prompt[index]!);
      seen.add(index);
      continue;
    }
    // A message a strategy wrote (a summary, an omission marker): plain text.
    const text =
      typeof message.content === 'string' ? message.content : (message.content ?? []).map((part) => (part.type === 'text' ? String(part.text) : '')).join('');
    if (message.role === 'system' || message.role === 'developer') result.push({ role: 'system', content: text });
    else if (message.role === 'assistant') result.push({ role: 'assistant', content: [{ type: 'text', text }] });
    else result.push({ role: 'user', content: [{ type: 'text', text }] });
  }
  return result;
}

/** A cached chat completion (replayed as JSON by the OpenAI format) as AI SDK content. */
function cachedContent(body: unknown): { content: (LanguageModelV3Text | LanguageModelV3ToolCall)[]; finishReason: LanguageModelV3FinishReason } {
  const choice = (body as { choices?: { message?: ChatMessage; finish_reason?: string }[] } | undefined)?.choices?.[0];
  const content: (LanguageModelV3Text | LanguageModelV3ToolCall)[] = [];
  const text = typeof choice?.message?.content === 'string' ? choice.message.content : '';
  if (text.length > 0) content.push({ type: 'text', text });
  for (const call of choice?.message?.tool_calls ?? [])
    content.push({ type: 'tool-call', toolCallId: call.id, toolName: call.function.name, input: call.function.arguments });
  const raw = choice?.finish_reason ?? 'stop';
  return { content, finishReason: { unified: raw === 'tool_calls' ? 'tool-calls' : raw === 'length' ? 'length' : 'stop', raw } };
}

/** An AI SDK answer as the chat completion the cache stores, or undefined when it holds more than text and tool calls. */
function asCompletion(content: readonly LanguageModelV3Content[], finishReason: LanguageModelV3FinishReason): CachedResponse | undefined {
  let text = '';
  const calls: NonNullable<ChatMessage['tool_calls']> = [];
  for (const part of content) {
    if (part.type === 'text') text += part.text;
    else if (part.type === 'tool-call') calls.push({ id: part.toolCallId, type: 'function', function: { name: part.toolName, arguments: part.input } });
    else return undefined;
  }
  const message: ChatMessage = { role: 'assistant', content: text.length > 0 || calls.length === 0 ? text : null };
  if (calls.length > 0) message.tool_calls = calls;
  const finish = finishReason.unified === 'tool-calls' ? 'tool_calls' : finishReason.unified === 'stop' ? 'stop' : (finishReason.raw ?? finishReason.unified);
  return { format: 'openai', body: { object: 'chat.completion', choices: [{ index: 0, message, finish_reason: finish }] } };
}

const emptyUsage = { inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 0, text: 0, reasoning: 0 } };

/**
 * Vercel AI SDK middleware: `transformParams` compacts the prompt; with a cache, `wrapGenerate`
 * and `wrapStream` answer a repeated prompt from it (replayed by the same wire format as every
 * other adapter) and store complete answers.
 *
 * @example
 * const model = wrapLanguageModel({ model: openai('gpt-4o-mini'), middleware: compaction({ maxInputTokens: 4000 }) })
 */
export const AI_SDK_OPTIONS = defineOptions<AiSdkCompactionOptions>({
  factory: 'ai-sdk compaction',
  defaults: {},
  rules: { tenant: rules.function, route: rules.function, onStats: rules.function },
  docs: [['src/adapters/ai-sdk.ts', 'AiSdkCompactionOptions']],
});

export function compaction(source: CompactorSource, options: AiSdkCompactionOptions = {}): LanguageModelV3Middleware {
  AI_SDK_OPTIONS.parse(options);
  const compactor = compactorOf(source);
  const prepared = new WeakMap<LanguageModelV3CallOptions, Prepared>();

  return {
    specificationVersion: 'v3',
    async transformParams({ params, model }) {
      const { messages, origin } = toCanonical(params.prompt);
      const body: Record<string, unknown> = { model: model.modelId, messages };
      for (const key of SCOPED_SETTINGS) if (params[key] !== undefined) body[key] = params[key];
      if (params.tools?.length) body.tools = params.tools;
      const outcome = await prepare(body, {
        compactor,
        format: 'openai',
        route: options.route?.(params) ?? 'ai-sdk',
        tenant: options.tenant?.(params),
        signal: params.abortSignal,
        header: (name) => params.headers?.[name],
        headers: false,
      });
      options.onStats?.(outcome.stats);
      const transformed: LanguageModelV3CallOptions =
        outcome.kind === 'cached'
          ? { ...params }
          : { ...params, prompt: fromCanonical((outcome.request as { messages: ChatMessage[] }).messages, origin, params.prompt) };
      prepared.set(transformed, outcome);
      return transformed;
    },
    async wrapGenerate({ doGenerate, params }) {
      const outcome = prepared.get(params);
      if (outcome?.kind === 'cached' && outcome.replay.kind === 'json') {
        const { content, finishReason } = cachedContent(outcome.replay.body);
        return { content, finishReason, usage: emptyUsage, warnings: [], providerMetadata: { contextCompactor: { cache: 'hit' } } };
      }
      let result: LanguageModelV3GenerateResult;
      try {
        result = await doGenerate();
      } finally {
        // Whatever is not committed below releases identical requests waiting on this one.
        queueMicrotask(() => (outcome?.kind === 'forward' ? outcome.release() : undefined));
      }
      const stored = outcome?.kind === 'forward' && outcome.commit ? asCompletion(result.content, result.finishReason) : undefined;
      if (stored && outcome?.kind === 'forward') void outcome.commit?.(stored).catch(() => undefined);
      return result;
    },
    async wrapStream({ doStream, params }) {
      const outcome = prepared.get(params);
      if (outcome?.kind === 'cached' && outcome.replay.kind === 'json') {
        const { content, finishReason } = cachedContent(outcome.replay.body);
        const parts: LanguageModelV3StreamPart[] = [{ type: 'stream-start', warnings: [] }];
        content.forEach((part, index) => {
          if (part.type === 'text')
            parts.push(
              { type: 'text-start', id: `cached-${index}` },
              { type: 'text-delta', id: `cached-${index}`, delta: part.text },
              { type: 'text-end', id: `cached-${index}` },
            );
          else parts.push(part);
        });
        parts.push({ type: 'finish', finishReason, usage: emptyUsage, providerMetadata: { contextCompactor: { cache: 'hit' } } });
        return {
          stream: new ReadableStream<LanguageModelV3StreamPart>({
            start(controller) {
              for (const part of parts) controller.enqueue(part);
              controller.close();
            },
          }),
        };
      }
      let result: Awaited<ReturnType<typeof doStream>>;
      try {
        result = await doStream();
      } catch (error) {
        if (outcome?.kind === 'forward') outcome.release();
        throw error;
      }
      if (outcome?.kind !== 'forward' || !outcome.commit) return result;
      const content: LanguageModelV3Content[] = [];
      let text = '';
      let complete = true;
      const watch = new TransformStream<LanguageModelV3StreamPart, LanguageModelV3StreamPart>({
        transform(part, controller) {
          if (part.type === 'text-delta') text += part.delta;
          else if (part.type === 'tool-call') content.push(part);
          else if (part.type === 'file' || part.type === 'error' || part.type === 'source' || part.type === 'reasoning-delta') complete = false;
          else if (part.type === 'finish') {
            const stored = complete ? asCompletion([{ type: 'text', text }, ...content], part.finishReason) : undefined;
            if (stored) void outcome.commit?.(stored).catch(() => undefined);
            else outcome.release();
          }
          controller.enqueue(part);
        },
      });
      return { ...result, stream: result.stream.pipeThrough(watch) };
    },
  };
}

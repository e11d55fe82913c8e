import type {
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3GenerateResult,
  LanguageModelV3Message,
  LanguageModelV3Middleware,
  LanguageModelV3Prompt,
  LanguageModelV3StreamPart,
} from '@ai-sdk/provider';
import { createCompactor, type CacheOutcome, type CompactionStats, type Compactor, type CompactorOptions } from '../compactor.js';
import type { ChatMessage, ContentPart } from '../types.js';

export interface CompactorMiddlewareOptions {
  /** The compactor (or its options). Give it a `cache` to answer repeated prompts without the model. */
  compactor?: Compactor | CompactorOptions;
  /** Tenant of the calls this model makes (scopes the cache). */
  tenant?: string;
  /** Route name passed to strategies and the cache. @default 'ai-sdk' */
  route?: string;
  /** Called with the stats of every compaction (for logs and metrics). */
  onStats?: (stats: CompactionStats) => void;
}

interface Stash {
  outcome: CacheOutcome | undefined;
}

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
        add({ role: 'user', content: message.content.map((part): ContentPart => (part.type === 'text' ? { type: 'text', text: part.text } : { type: part.type, mediaType: part.mediaType, filename: part.filename })) }, index);
        break;
      case 'assistant': {
        const text = message.content.flatMap((part) => (part.type === 'text' || part.type === 'reasoning' ? [part.text] : [])).join('\n');
        const calls = message.content.flatMap((part) =>
          part.type === 'tool-call' ? [{ id: part.toolCallId, type: 'function', function: { name: part.toolName, arguments: typeof part.input === 'string' ? part.input : JSON.stringify(part.input ?? {}) } }] : [],
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
    const text = typeof message.content === 'string' ? message.content : (message.content ?? []).map((part) => (part.type === 'text' ? String(part.text) : '')).join('');
    if (message.role === 'system' || message.role === 'developer') result.push({ role: 'system', content: text });
    else if (message.role === 'assistant') result.push({ role: 'assistant', content: [{ type: 'text', text }] });
    else result.push({ role: 'user', content: [{ type: 'text', text }] });
  }
  return result;
}

function cachedText(body: unknown): string {
  const choice = (body as { choices?: { message?: { content?: unknown } }[] } | undefined)?.choices?.[0];
  return typeof choice?.message?.content === 'string' ? choice.message.content : '';
}

const emptyUsage = { inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 0, text: 0, reasoning: 0 } };

/**
 * Vercel AI SDK middleware: `transformParams` compacts the prompt; with a cache, `wrapGenerate`
 * and `wrapStream` answer repeated prompts from it and store text answers that finished with
 * `stop`.
 *
 * @example
 * const model = wrapLanguageModel({ model: openai('gpt-4o-mini'), middleware: compactorMiddleware({ compactor: { maxInputTokens: 4000 } }) })
 */
export function compactorMiddleware(options: CompactorMiddlewareOptions = {}): LanguageModelV3Middleware {
  const compactor: Compactor = typeof (options.compactor as Compactor | undefined)?.compact === 'function' ? (options.compactor as Compactor) : createCompactor((options.compactor as CompactorOptions | undefined) ?? {});
  const route = options.route ?? 'ai-sdk';
  const stashes = new WeakMap<LanguageModelV3CallOptions, Stash>();

  return {
    specificationVersion: 'v3',
    async transformParams({ params, model }) {
      const { messages, origin } = toCanonical(params.prompt);
      const body: Record<string, unknown> = { model: model.modelId, messages };
      // The scope of a cached answer includes what changes it.
      for (const key of ['temperature', 'topP', 'topK', 'seed', 'maxOutputTokens', 'stopSequences', 'presencePenalty', 'frequencyPenalty', 'responseFormat', 'toolChoice'] as const) {
        if (params[key] !== undefined) body[key] = params[key];
      }
      if (params.tools?.length) body.tools = params.tools;
      const result = await compactor.compact(body as { messages: ChatMessage[] }, { tenant: options.tenant, route, format: 'openai', signal: params.abortSignal, model: model.modelId });
      options.onStats?.(result.stats);
      const transformed: LanguageModelV3CallOptions = result.cache?.status === 'hit' ? { ...params } : { ...params, prompt: fromCanonical(result.request.messages, origin, params.prompt) };
      stashes.set(transformed, { outcome: result.cache });
      return transformed;
    },
    async wrapGenerate({ doGenerate, params }) {
      const outcome = stashes.get(params)?.outcome;
      if (outcome?.status === 'hit' && outcome.response) {
        const content: LanguageModelV3Content[] = [{ type: 'text', text: cachedText(outcome.response.body) }];
        return { content, finishReason: { unified: 'stop', raw: 'stop' }, usage: emptyUsage, warnings: [], providerMetadata: { contextCompactor: { cache: 'hit' } } };
      }
      const result: LanguageModelV3GenerateResult = await doGenerate();
      if (outcome?.status === 'miss' && result.finishReason.unified === 'stop' && result.content.every((part) => part.type === 'text')) {
        const text = result.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
        void outcome.commit({ format: 'openai', body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] } }).catch(() => undefined);
      }
      return result;
    },
    async wrapStream({ doStream, params }) {
      const outcome = stashes.get(params)?.outcome;
      if (outcome?.status === 'hit' && outcome.response) {
        const text = outcome.response.body !== undefined ? cachedText(outcome.response.body) : '';
        const parts: LanguageModelV3StreamPart[] = [
          { type: 'stream-start', warnings: [] },
          { type: 'text-start', id: 'cached' },
          { type: 'text-delta', id: 'cached', delta: text },
          { type: 'text-end', id: 'cached' },
          { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: emptyUsage, providerMetadata: { contextCompactor: { cache: 'hit' } } },
        ];
        return {
          stream: new ReadableStream<LanguageModelV3StreamPart>({
            start(controller) {
              for (const part of parts) controller.enqueue(part);
              controller.close();
            },
          }),
        };
      }
      const result = await doStream();
      if (outcome?.status !== 'miss') return result;
      let text = '';
      let onlyText = true;
      const watch = new TransformStream<LanguageModelV3StreamPart, LanguageModelV3StreamPart>({
        transform(part, controller) {
          if (part.type === 'text-delta') text += part.delta;
          else if (part.type === 'tool-call' || part.type === 'tool-input-start' || part.type === 'file' || part.type === 'error') onlyText = false;
          else if (part.type === 'finish' && part.finishReason.unified === 'stop' && onlyText) {
            void outcome.commit({ format: 'openai', body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] } }).catch(() => undefined);
          }
          controller.enqueue(part);
        },
      });
      return { ...result, stream: result.stream.pipeThrough(watch) };
    },
  };
}

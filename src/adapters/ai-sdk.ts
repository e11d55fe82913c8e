import { defineOptions, rules } from '../core/define-options.js';
import type {
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3GenerateResult,
  LanguageModelV3Middleware,
  LanguageModelV3StreamPart,
} from '@ai-sdk/provider';
import type { CompactionStats } from '../core/stats.js';
import type { ChatMessage } from '../core/types.js';
import { asCompletion, cachedContent, fromCanonical, toCanonical } from '../formats/ai-sdk.js';
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
      // A shadow request that went on before its compaction ended reports once it has.
      if (outcome.kind === 'forward' && outcome.settled) void outcome.settled.then((stats) => options.onStats?.(stats)).catch(() => undefined);
      else options.onStats?.(outcome.stats);
      const transformed: LanguageModelV3CallOptions =
        // A cache hit is answered below; shadow mode sends the prompt as it came.
        outcome.kind === 'cached' || outcome.stats.passThrough === 'shadow'
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

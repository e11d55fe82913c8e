/** The `onnx` namespace of onnx-proto (CommonJS: under ESM it arrives on the default export). */
export type Onnx = typeof import('onnx-proto').onnx;
export type OnnxGraph = import('onnx-proto').onnx.IGraphProto;

export async function loadOnnxProto(): Promise<Onnx> {
  const proto = (await import('onnx-proto')) as unknown as { onnx?: Onnx; default: { onnx: Onnx } };
  return proto.onnx ?? proto.default.onnx;
}

/** Serialise a graph as an ONNX model (IR 7, the default opset at `opset`). */
export function encodeOnnxModel(onnx: Onnx, graph: OnnxGraph, opset: number): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 7, producerName: 'context-compactor', opsetImport: [{ domain: '', version: opset }], graph }),
  ).finish();
}

import { dot } from './types.js';

/**
 * The WebAssembly SIMD kernel assembled from dot-many.wat (264 bytes). test/embedders.test.ts
 * assembles the .wat with wabt and checks these bytes are exactly its output.
 */
export const DOT_MANY_WASM =
  'AGFzbQEAAAABCQFgBX9/f39/AAMCAQAFAwEAAQcTAgZtZW1vcnkCAAZzY29yZXMAAArUAQHRAQIDfwJ7IANBAnQhBwJAA0AgBSACTw0B/QwAAAAAAAAAAAAAAAAAAAAAIQj9DAAAAAAAAAAAAAAAAAAAAAAhCUEAIQYCQANAIAYgB08NASAIIAAgBmr9AAQAIAEgBmr9AAQA/eYB/eQBIQggCSAAIAZq/QAEECABIAZq/QAEEP3mAf3kASEJIAZBIGohBgwACwsgCCAJ/eQBIQggBCAI/R8AIAj9HwGSIAj9HwIgCP0fA5KSuzkDACAEQQhqIQQgASAHaiEBIAVBAWohBQwACwsL';

/** Vectors are copied into the kernel's memory in chunks of at most this many bytes. */
const CHUNK_BYTES = 4 * 1024 * 1024;

interface Kernel {
  memory: WebAssembly.Memory;
  scores: (query: number, matrix: number, rows: number, dims: number, out: number) => void;
}

let kernel: Kernel | null | undefined;

function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  try {
    const bytes = Buffer.from(DOT_MANY_WASM, 'base64');
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    kernel = instance.exports as unknown as Kernel;
  } catch {
    // No WebAssembly SIMD here: the JavaScript loop does the same work.
    kernel = null;
  }
  return kernel;
}

/** Whether dotMany runs on the WebAssembly SIMD kernel in this process. */
export function simdAvailable(): boolean {
  return loadKernel() !== null;
}

/**
 * Dot product of `query` with each vector; a missing vector scores -Infinity. Runs on a
 * WebAssembly SIMD kernel (about 5× the plain JavaScript loop) when the runtime has one and the
 * dimension is a multiple of 8, else on `dot`. The kernel sums in float32, so scores can differ
 * from `dot`'s in the sixth decimal. Its memory is bounded: vectors go through it in 4 MiB chunks.
 */
export function dotMany(query: Float32Array, vectors: readonly (Float32Array | undefined)[], options: { simd?: boolean } = {}): Float64Array {
  const out = new Float64Array(vectors.length).fill(-Infinity);
  const dims = query.length;
  const wasm = options.simd === false || dims === 0 || dims % 8 !== 0 ? null : loadKernel();
  if (!wasm) {
    for (let index = 0; index < vectors.length; index++) {
      const vector = vectors[index];
      if (!vector) continue;
      if (vector.length !== dims) throw new RangeError(`vector ${index} has ${vector.length} dimensions, the query ${dims}`);
      out[index] = dot(query, vector);
    }
    return out;
  }
  const rowBytes = dims * 4;
  const chunkRows = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  // Layout: query, then scores (float64, 8-byte aligned), then the chunk of rows.
  const scoresAt = rowBytes;
  const matrixAt = scoresAt + chunkRows * 8;
  const needed = matrixAt + chunkRows * rowBytes;
  if (wasm.memory.buffer.byteLength < needed) wasm.memory.grow(Math.ceil((needed - wasm.memory.buffer.byteLength) / 65536));
  const floats = new Float32Array(wasm.memory.buffer);
  const doubles = new Float64Array(wasm.memory.buffer);
  floats.set(query, 0);
  const positions = new Int32Array(chunkRows);
  let rows = 0;
  const flush = (): void => {
    wasm.scores(0, matrixAt, rows, dims, scoresAt);
    for (let row = 0; row < rows; row++) out[positions[row]!] = doubles[scoresAt / 8 + row]!;
    rows = 0;
  };
  for (let index = 0; index < vectors.length; index++) {
    const vector = vectors[index];
    if (!vector) continue;
    if (vector.length !== dims) throw new RangeError(`vector ${index} has ${vector.length} dimensions, the query ${dims}`);
    floats.set(vector, (matrixAt + rows * rowBytes) / 4);
    positions[rows++] = index;
    if (rows === chunkRows) flush();
  }
  if (rows > 0) flush();
  return out;
}

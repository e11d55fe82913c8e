import { CompactorError } from '../core/errors.js';
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

function kernelFor(dims: number, simd: boolean | undefined): Kernel | null {
  return simd === false || dims === 0 || dims % 8 !== 0 ? null : loadKernel();
}

/**
 * Runs the kernel over rows fed by `fill`, which copies up to `capacity` rows into `target` at
 * float offset `at` and returns how many it wrote; `emit` receives each chunk's scores.
 */
function runKernel(
  wasm: Kernel,
  query: Float32Array,
  fill: (target: Float32Array, at: number, capacity: number) => number,
  emit: (scores: Float64Array, offset: number, rows: number) => void,
): void {
  const dims = query.length;
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
  for (;;) {
    const rows = fill(floats, matrixAt / 4, chunkRows);
    if (rows === 0) return;
    wasm.scores(0, matrixAt, rows, dims, scoresAt);
    emit(doubles, scoresAt / 8, rows);
  }
}

/**
 * Dot product of `query` with each vector; a missing vector scores -Infinity. Runs on a
 * WebAssembly SIMD kernel (about 3× the plain JavaScript loop) when the runtime has one and the
 * dimension is a multiple of 8, else on `dot`. The kernel sums in float32, so scores can differ
 * from `dot`'s in the sixth decimal. Its memory is bounded: vectors go through it in 4 MiB chunks.
 */
export function dotMany(query: Float32Array, vectors: readonly (Float32Array | undefined)[], options: { simd?: boolean } = {}): Float64Array {
  const out = new Float64Array(vectors.length).fill(-Infinity);
  const dims = query.length;
  const check = (vector: Float32Array, index: number): void => {
    if (vector.length !== dims)
      throw new CompactorError('input.invalid', `vector ${index} has ${vector.length} dimensions, the query ${dims}`, {
        details: { vector: index, dimensions: vector.length, expected: dims },
      });
  };
  const wasm = kernelFor(dims, options.simd);
  if (!wasm) {
    vectors.forEach((vector, index) => {
      if (!vector) return;
      check(vector, index);
      out[index] = dot(query, vector);
    });
    return out;
  }
  let next = 0;
  let positions = new Int32Array(0);
  runKernel(
    wasm,
    query,
    (target, at, capacity) => {
      if (positions.length < capacity) positions = new Int32Array(capacity);
      let rows = 0;
      for (; next < vectors.length && rows < capacity; next++) {
        const vector = vectors[next];
        if (!vector) continue;
        check(vector, next);
        target.set(vector, at + rows * dims);
        positions[rows++] = next;
      }
      return rows;
    },
    (scores, offset, rows) => {
      for (let row = 0; row < rows; row++) out[positions[row]!] = scores[offset + row]!;
    },
  );
  return out;
}

/**
 * Dot product of `query` with each of the first `rows` rows of a row-major matrix (`rows` ×
 * query.length floats), as exact vector search needs; same kernel and fallback as `dotMany`.
 */
export function dotRows(query: Float32Array, matrix: Float32Array, rows: number, options: { simd?: boolean } = {}): Float64Array {
  const dims = query.length;
  if (matrix.length < rows * dims)
    throw new CompactorError('input.invalid', `the matrix holds ${Math.floor(matrix.length / Math.max(1, dims))} rows of ${dims}, not ${rows}`);
  const out = new Float64Array(rows);
  const wasm = kernelFor(dims, options.simd);
  if (!wasm) {
    for (let row = 0; row < rows; row++) out[row] = dot(query, matrix.subarray(row * dims, (row + 1) * dims));
    return out;
  }
  let done = 0;
  let written = 0;
  runKernel(
    wasm,
    query,
    (target, at, capacity) => {
      const count = Math.min(capacity, rows - done);
      target.set(matrix.subarray(done * dims, (done + count) * dims), at);
      done += count;
      return count;
    },
    (scores, offset, count) => {
      out.set(scores.subarray(offset, offset + count), written);
      written += count;
    },
  );
  return out;
}

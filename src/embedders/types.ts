export interface EmbedOptions {
  signal?: AbortSignal;
}

/**
 * A dense text embedder. `id` names the model and its settings and is part of every cache key,
 * so two embedders with different settings never share vectors.
 */
export interface Embedder {
  readonly id: string;
  readonly dimensions: number;
  embed(texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /**
   * False while an in-process model is still loading (a cold start): a deadline missed then is
   * the warm-up, counted as such, not a failure. Absent: the embedder is always ready.
   */
  ready?(): boolean;
  /** Release what the embedder holds (a worker, a model); it may load again on the next call. */
  close?(): Promise<void>;
}

/** L2-normalise in place (so cosine similarity is a dot product) and return the vector. */
export function normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (let index = 0; index < vector.length; index++) sum += vector[index]! * vector[index]!;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let index = 0; index < vector.length; index++) vector[index]! /= norm;
  return vector;
}

/** Dot product of two vectors of the same length; four running sums, about twice as fast as one. */
export function dot(a: Float32Array, b: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const length = a.length;
  const whole = length - (length % 4);
  let index = 0;
  for (; index < whole; index += 4) {
    s0 += a[index]! * b[index]!;
    s1 += a[index + 1]! * b[index + 1]!;
    s2 += a[index + 2]! * b[index + 2]!;
    s3 += a[index + 3]! * b[index + 3]!;
  }
  for (; index < length; index++) s0 += a[index]! * b[index]!;
  return s0 + s1 + s2 + s3;
}

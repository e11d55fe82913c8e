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

/** The embedding memo (see `createEmbeddingCache`): what strategies and the response cache read vectors through. */
export interface EmbeddingCache {
  /** Normalised vectors for `texts`, embedding only the misses, in batches, sharing in-flight work. */
  embed(embedder: Embedder, texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /** Vectors already in the memo, without embedding anything (undefined where missing). */
  peek(embedder: Embedder, texts: readonly string[]): (Float32Array | undefined)[];
  /**
   * Start embedding texts in the background. A failure is counted in `backgroundFailures` and
   * otherwise dropped: the texts stay missing, and the next request retries them.
   */
  warm(embedder: Embedder, texts: readonly string[]): void;
  /** Stop background (`warm`) work not started yet. The memo stays usable, and keeps its vectors. */
  close(): void;
  /** Resolves when no embedding, and no write to the store, is in flight (for benches, tests and graceful shutdown). */
  idle(): Promise<void>;
  /** Number of texts the embedder was actually asked for, since creation. */
  readonly misses: number;
  /** Background (`warm`) embedding calls that failed, since creation. */
  readonly backgroundFailures: number;
}

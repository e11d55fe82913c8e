import { createRequire } from 'node:module';
import { warnOnce } from '../core/optional.js';
import { FlatIndex } from './flat-index.js';

interface UsearchMatches {
  keys: BigUint64Array;
  distances: Float32Array;
}
interface UsearchIndex {
  add(key: bigint, vector: Float32Array): void;
  search(vector: Float32Array, k: number, threads: number): UsearchMatches;
  remove(key: bigint): number;
  contains(key: bigint): boolean;
  size(): number;
}
interface UsearchModule {
  Index: new (config: {
    dimensions: number;
    metric: string;
    quantization: string;
    connectivity: number;
    expansion_add: number;
    expansion_search: number;
  }) => UsearchIndex;
}

let usearch: UsearchModule | null | undefined;

/**
 * usearch (HNSW, prebuilt N-API binaries from npm) when it loads on this platform, else null. Its
 * ESM entry point recurses forever looking for the binary, so the CommonJS one is required.
 */
export function loadUsearch(): UsearchModule | null {
  if (usearch !== undefined) return usearch;
  try {
    usearch = createRequire(import.meta.url)('usearch') as UsearchModule;
    new usearch.Index({ dimensions: 2, metric: 'cos', quantization: 'i8', connectivity: 16, expansion_add: 64, expansion_search: 64 });
  } catch {
    usearch = null;
  }
  return usearch;
}

export interface VectorIndexOptions {
  /** Rows at which the index moves from exact flat search to HNSW. */
  annThreshold: number;
}

/**
 * One namespace's vectors: exact flat search while small, HNSW (usearch) once it passes
 * `annThreshold` rows, if usearch loads; otherwise flat search at every size. The HNSW graph holds
 * int8-quantized vectors (about 3× faster to build and search than f32 here, same recall on the lookup
 * bench); its candidates are re-scored exactly against the float vectors kept beside it.
 */
export class VectorIndex {
  readonly dimensions: number;
  private flat: FlatIndex | null;
  private ann: UsearchIndex | null = null;
  private keyOf = new Map<string, bigint>();
  private vectors = new Map<string, Float32Array>();
  private idOf = new Map<bigint, string>();
  private nextKey = 1n;
  private readonly annThreshold: number;

  constructor(dimensions: number, options: VectorIndexOptions) {
    this.dimensions = dimensions;
    this.flat = new FlatIndex(dimensions);
    this.annThreshold = options.annThreshold;
  }

  get size(): number {
    return this.flat ? this.flat.size : this.keyOf.size;
  }

  get kind(): 'flat' | 'hnsw' {
    return this.flat ? 'flat' : 'hnsw';
  }

  add(id: string, vector: Float32Array): void {
    if (this.flat) {
      this.flat.add(id, vector);
      if (this.flat.size >= this.annThreshold) this.promote();
      return;
    }
    this.remove(id);
    const key = this.nextKey++;
    this.ann!.add(key, vector);
    this.keyOf.set(id, key);
    this.idOf.set(key, id);
    this.vectors.set(id, Float32Array.from(vector));
  }

  remove(id: string): void {
    if (this.flat) {
      this.flat.remove(id);
      return;
    }
    const key = this.keyOf.get(id);
    if (key === undefined) return;
    this.ann!.remove(key);
    this.keyOf.delete(id);
    this.idOf.delete(key);
    this.vectors.delete(id);
  }

  search(query: Float32Array, k: number, minScore: number): { id: string; score: number }[] {
    if (this.flat) return this.flat.search(query, k, minScore);
    const found = this.ann!.search(query, Math.max(k * 4, 16), 0);
    const matches: { id: string; score: number }[] = [];
    for (let index = 0; index < found.keys.length; index++) {
      const id = this.idOf.get(found.keys[index]!);
      const vector = id === undefined ? undefined : this.vectors.get(id);
      if (!vector) continue;
      let score = 0;
      for (let position = 0; position < vector.length; position++) score += vector[position]! * query[position]!;
      if (score >= minScore) matches.push({ id: id!, score });
    }
    return matches.sort((a, b) => b.score - a.score).slice(0, k);
  }

  private promote(): void {
    const module = loadUsearch();
    if (!module)
      warnOnce(
        'usearch',
        `context-compactor: a vector namespace passed ${this.annThreshold} rows and usearch is not installed: its search stays exact and flat (npm install usearch for HNSW).`,
      );
    if (!module || !this.flat) return;
    const ann = new module.Index({
      dimensions: this.dimensions,
      metric: 'cos',
      quantization: 'i8',
      connectivity: 16,
      expansion_add: 128,
      expansion_search: 64,
    });
    for (const [id, vector] of this.flat.entries()) {
      const key = this.nextKey++;
      ann.add(key, vector);
      this.keyOf.set(id, key);
      this.idOf.set(key, id);
      this.vectors.set(id, Float32Array.from(vector));
    }
    this.ann = ann;
    this.flat = null;
  }
}

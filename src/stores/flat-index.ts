import { dotRows } from '../embedders/dot-many.js';

/**
 * Exact nearest-neighbour search over one contiguous Float32Array of unit vectors. Adding and
 * removing are O(1) (removal swaps the last row in); search is one pass of dot products on the
 * WebAssembly SIMD kernel (`dotRows`). Capacity starts at one row and doubles as rows are added
 * (and halves once a quarter is used), so an index never holds more than twice its rows: a store
 * with tens of thousands of small namespaces (one per tenant) stays within the bytes it counts.
 */
export class FlatIndex {
  readonly dimensions: number;
  private data: Float32Array;
  private ids: string[] = [];
  private rows = new Map<string, number>();

  constructor(dimensions: number, initialCapacity = 1) {
    this.dimensions = dimensions;
    this.data = new Float32Array(dimensions * initialCapacity);
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: string): boolean {
    return this.rows.has(id);
  }

  add(id: string, vector: Float32Array): void {
    const existing = this.rows.get(id);
    if (existing !== undefined) {
      this.data.set(vector, existing * this.dimensions);
      return;
    }
    const row = this.ids.length;
    if ((row + 1) * this.dimensions > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data.set(vector, row * this.dimensions);
    this.ids.push(id);
    this.rows.set(id, row);
  }

  remove(id: string): void {
    const row = this.rows.get(id);
    if (row === undefined) return;
    const last = this.ids.length - 1;
    if (row !== last) {
      const lastId = this.ids[last]!;
      this.data.copyWithin(row * this.dimensions, last * this.dimensions, (last + 1) * this.dimensions);
      this.ids[row] = lastId;
      this.rows.set(lastId, row);
    }
    this.ids.pop();
    this.rows.delete(id);
    const capacity = this.data.length / this.dimensions;
    if (capacity >= 8 && this.ids.length * 4 <= capacity) this.data = this.data.slice(0, (capacity / 2) * this.dimensions);
  }

  /** Rows the index has room for (at most twice its size, once it has any). */
  get capacity(): number {
    return this.data.length / this.dimensions;
  }

  /** All rows' vectors in insertion-ish order (for rebuilding into another index). */
  *entries(): Generator<[string, Float32Array]> {
    for (let row = 0; row < this.ids.length; row++) {
      yield [this.ids[row]!, this.data.subarray(row * this.dimensions, (row + 1) * this.dimensions)];
    }
  }

  search(query: Float32Array, k: number, minScore: number): { id: string; score: number }[] {
    const scores = dotRows(query, this.data, this.ids.length);
    const best: { id: string; score: number }[] = [];
    for (let row = 0; row < scores.length; row++) {
      const score = scores[row]!;
      if (score < minScore) continue;
      if (best.length < k) {
        best.push({ id: this.ids[row]!, score });
        best.sort((a, b) => b.score - a.score);
      } else if (score > best[k - 1]!.score) {
        best[k - 1] = { id: this.ids[row]!, score };
        best.sort((a, b) => b.score - a.score);
      }
    }
    return best;
  }
}

/** mulberry32: a tiny seeded PRNG, so every instance derives the same hyperplanes. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random-hyperplane LSH (SimHash): `tables` hashes of `bits` signs each. Two unit vectors at angle
 * θ agree on one bit with probability 1 − θ/π, so near-duplicates share buckets in many tables and
 * unrelated vectors in almost none. Deterministic in (seed, dimensions, tables, bits).
 */
export class HyperplaneLsh {
  readonly tables: number;
  readonly bits: number;
  readonly dimensions: number;
  private readonly planes: Float32Array;

  constructor(dimensions: number, tables: number, bits: number, seed: number) {
    this.dimensions = dimensions;
    this.tables = tables;
    this.bits = bits;
    const next = seededRandom(seed ^ (dimensions * 2654435761));
    this.planes = new Float32Array(tables * bits * dimensions);
    for (let index = 0; index < this.planes.length; index += 2) {
      // Box–Muller: Gaussian components make the hyperplane directions uniform on the sphere.
      const u = Math.max(next(), 1e-12);
      const v = next();
      const radius = Math.sqrt(-2 * Math.log(u));
      this.planes[index] = radius * Math.cos(2 * Math.PI * v);
      if (index + 1 < this.planes.length) this.planes[index + 1] = radius * Math.sin(2 * Math.PI * v);
    }
  }

  /** One bucket code per table. */
  codes(vector: Float32Array): number[] {
    const codes: number[] = [];
    const dimensions = this.dimensions;
    for (let table = 0; table < this.tables; table++) {
      let code = 0;
      for (let bit = 0; bit < this.bits; bit++) {
        const offset = (table * this.bits + bit) * dimensions;
        let sum = 0;
        for (let index = 0; index < dimensions; index++) sum += this.planes[offset + index]! * vector[index]!;
        code = (code << 1) | (sum >= 0 ? 1 : 0);
      }
      codes.push(code >>> 0);
    }
    return codes;
  }
}

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Embedder } from '../src/embedders/types.js';
import { normalize } from '../src/embedders/types.js';

/**
 * Vectors of many texts, embedded once and kept under .cache/ (git-ignored): embedding the 53k
 * pair texts with USE-lite takes about 12 minutes here, training and sweeps take seconds.
 */
export async function pairVectors(
  embedder: Embedder,
  texts: readonly string[],
  cacheDir = '.cache/pair-vectors',
  onProgress?: (done: number, total: number) => void,
): Promise<Map<string, Float32Array>> {
  const name = createHash('sha1').update(embedder.id).digest('hex').slice(0, 12);
  const textsFile = join(cacheDir, `${name}.texts.json`);
  const vectorsFile = join(cacheDir, `${name}.f32`);
  const found = new Map<string, Float32Array>();
  const dimensions = embedder.dimensions;
  if (existsSync(textsFile) && existsSync(vectorsFile)) {
    const known = JSON.parse(readFileSync(textsFile, 'utf8')) as string[];
    const bytes = readFileSync(vectorsFile);
    const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    known.forEach((text, index) => {
      found.set(text, all.subarray(index * dimensions, (index + 1) * dimensions));
    });
  }
  const missing = [...new Set(texts.filter((text) => !found.has(text)))];
  for (let start = 0; start < missing.length; start += 64) {
    const slice = missing.slice(start, start + 64);
    const vectors = await embedder.embed(slice);
    slice.forEach((text, index) => {
      found.set(text, normalize(Float32Array.from(vectors[index]!)));
    });
    onProgress?.(Math.min(start + 64, missing.length), missing.length);
  }
  if (missing.length > 0) {
    mkdirSync(cacheDir, { recursive: true });
    const known = [...found.keys()];
    const all = new Float32Array(known.length * dimensions);
    known.forEach((text, index) => {
      all.set(found.get(text)!, index * dimensions);
    });
    writeFileSync(textsFile, JSON.stringify(known));
    writeFileSync(vectorsFile, Buffer.from(all.buffer));
  }
  return found;
}

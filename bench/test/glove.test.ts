import { join } from 'node:path';
import { expect, test } from 'vitest';
import { packageRoot } from '../../src/cli/package-root.js';
import { transformersEmbedder } from '../../src/embedders/transformers.js';
import { dot, normalize } from '../../src/embedders/types.js';
import { buildGloveModel } from '../glove-model.js';

// The bench builds a GloVe ONNX model from npm-shipped vectors; transformers.js must load it with no network.
test('transformers.js loads the locally built GloVe ONNX model fully offline', async () => {
  const folder = await buildGloveModel(join(packageRoot(), '.cache', 'models'));
  const embedder = transformersEmbedder({ model: folder, quantized: false, allowRemoteModels: false });
  const [a, b, c] = (await embedder.embed(['I adopted a puppy last week', 'We got a new dog recently', 'The stock market fell sharply on Tuesday'])).map(
    (vector) => normalize(Float32Array.from(vector)),
  );
  expect(a!.length).toBe(embedder.dimensions);
  expect(dot(a!, b!)).toBeGreaterThan(dot(a!, c!) + 0.05);
  expect(embedder.dimensions).toBe(100);
  expect(embedder.id).toContain('local:glove-sif');
});

import { createServer, type IncomingMessage, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEmbeddingCache, type EmbeddingStore } from '../src/embedders/memo.js';
import { encodeOnnxModel, loadOnnxProto } from '../src/embedders/onnx-proto.js';
import { createOnnxRunner } from '../src/embedders/onnx-runner.js';
import { openaiEmbedder } from '../src/embedders/openai.js';
import { transformersEmbedder } from '../src/embedders/transformers.js';
import { dot, normalize, type Embedder } from '../src/embedders/types.js';
import { DOT_MANY_WASM, dotMany, dotRows, simdAvailable } from '../src/embedders/dot-many.js';
import { useLite } from '../src/embedders/use-lite.js';
import { packageRoot } from '../src/cli/package-root.js';
import { hashEmbedder } from '../src/testing/index.js';
import { coded } from './helpers.js';

const similar = ['I adopted a puppy last week', 'We got a new dog recently'];
const different = 'The stock market fell sharply on Tuesday';

async function checkSemantics(embedder: Embedder): Promise<void> {
  const [a, b, c] = (await embedder.embed([...similar, different])).map((vector) => normalize(Float32Array.from(vector)));
  expect(a!.length).toBe(embedder.dimensions);
  expect(dot(a!, b!)).toBeGreaterThan(dot(a!, c!) + 0.05);
}

test('a failed background warm-up is counted, and the texts stay missing for the next request', async () => {
  let calls = 0;
  const flaky: Embedder = {
    id: 'flaky',
    dimensions: 4,
    embed: async (texts) => (calls++ === 0 ? Promise.reject(new Error('down')) : texts.map(() => Float32Array.of(1, 0, 0, 0))),
  };
  const cache = createEmbeddingCache();
  cache.warm(flaky, ['one', 'two']);
  await cache.idle();
  await new Promise((resolve) => setImmediate(resolve));
  expect(cache.backgroundFailures).toBe(1);
  expect(cache.peek(flaky, ['one', 'two'])).toEqual([undefined, undefined]);
  cache.warm(flaky, ['one', 'two']);
  await cache.idle();
  expect(cache.backgroundFailures).toBe(1);
  expect(cache.peek(flaky, ['one', 'two']).every(Boolean)).toBe(true);
});

describe('dotMany', () => {
  const vector = (length: number, seed: number) => Float32Array.from({ length }, (_, index) => Math.sin(seed * 31 + index * 0.7));

  test('the shipped WebAssembly bytes are exactly what wabt assembles from dot-many.wat', async () => {
    const { default: wabtInit } = await import('wabt');
    const wabt = await wabtInit();
    const source = readFileSync(join(import.meta.dirname, '../src/embedders/dot-many.wat'), 'utf8');
    const module = wabt.parseWat('dot-many.wat', source, { simd: true });
    const { buffer } = module.toBinary({});
    module.destroy();
    expect(Buffer.from(buffer).toString('base64')).toBe(DOT_MANY_WASM);
  });

  test('runs on the SIMD kernel here, and both paths match dot, missing vectors scoring -Infinity', () => {
    expect(simdAvailable()).toBe(true);
    // 3,000 rows of 512 dimensions cross the kernel's 4 MiB chunk; 12 dimensions take the fallback.
    for (const [dims, count] of [
      [8, 5],
      [512, 3000],
      [12, 7],
    ] as const) {
      const query = vector(dims, 1);
      const vectors = Array.from({ length: count }, (_, index) => (index % 5 === 3 ? undefined : vector(dims, index + 2)));
      for (const simd of [true, false]) {
        const scores = dotMany(query, vectors, { simd });
        vectors.forEach((candidate, index) => {
          if (candidate) expect(scores[index]).toBeCloseTo(dot(query, candidate), 4);
          else expect(scores[index]).toBe(-Infinity);
        });
      }
    }
  });

  test('dotRows scores a row-major matrix like dot, across chunks and on both paths', () => {
    for (const [dims, rows] of [
      [512, 2500],
      [12, 9],
    ] as const) {
      const query = vector(dims, 1);
      const matrix = new Float32Array(dims * (rows + 3));
      for (let row = 0; row < rows + 3; row++) matrix.set(vector(dims, row + 2), row * dims);
      for (const simd of [true, false]) {
        const scores = dotRows(query, matrix, rows, { simd });
        expect(scores.length).toBe(rows);
        for (let row = 0; row < rows; row++) expect(scores[row]).toBeCloseTo(dot(query, matrix.subarray(row * dims, (row + 1) * dims)), 4);
      }
    }
    expect(() => dotRows(vector(8, 1), new Float32Array(20), 3)).toThrow(coded('input.invalid'));
  });

  test('a vector of another dimension is an error, not a wrong score', () => {
    expect(() => dotMany(vector(16, 1), [vector(16, 2), vector(8, 3)])).toThrow(
      expect.objectContaining({ code: 'input.invalid', details: { vector: 1, dimensions: 8, expected: 16 } }),
    );
    expect(() => dotMany(vector(16, 1), [vector(8, 3)], { simd: false })).toThrow(coded('input.invalid'));
  });
});

test("dot matches a plain loop for every length, including the unrolled loop's remainder", () => {
  for (const length of [0, 1, 3, 4, 5, 7, 8, 512, 513]) {
    const a = Float32Array.from({ length }, (_, index) => Math.sin(index + 1));
    const b = Float32Array.from({ length }, (_, index) => Math.cos(index * 3));
    let expected = 0;
    for (let index = 0; index < length; index++) expected += a[index]! * b[index]!;
    expect(dot(a, b)).toBeCloseTo(expected, 9);
  }
});

describe('embedding memo', () => {
  test('lets the event loop turn between batches of an in-process encoder', async () => {
    let batches = 0;
    // An encoder that computes on the event loop and resolves at once: without a yield, its
    // batches would run back to back in microtasks.
    const busy: Embedder = {
      id: 'busy',
      dimensions: 2,
      embed: async (texts) => {
        batches++;
        return texts.map(() => Float32Array.of(1, 0));
      },
    };
    let batchesWhenTimerRan = -1;
    // Runs at the event loop's next turn (no real time involved).
    setImmediate(() => (batchesWhenTimerRan = batches));
    await createEmbeddingCache({ maxBatch: 4 }).embed(
      busy,
      Array.from({ length: 40 }, (_, index) => `text ${index}`),
    );
    expect(batches).toBe(10);
    // Without the yield the timer would only run after the tenth batch.
    expect(batchesWhenTimerRan).toBeGreaterThan(0);
    expect(batchesWhenTimerRan).toBeLessThan(10);
  });

  test('embeds only misses, in batches, and shares in-flight work between concurrent calls', async () => {
    const embedder = hashEmbedder();
    const cache = createEmbeddingCache({ maxBatch: 2 });
    const [first, second] = await Promise.all([cache.embed(embedder, ['a', 'b', 'c']), cache.embed(embedder, ['b', 'c', 'd'])]);
    expect(first[1]).toBe(second[0]);
    expect(embedder.texts).toBe(4); // a, b, c once; d once
    expect(cache.misses).toBe(4);
    expect(embedder.calls).toBe(3); // [a, b], [c], [d]
    await cache.embed(embedder, ['a', 'b', 'c', 'd', 'e']);
    expect(embedder.texts).toBe(5);
    expect(cache.peek(embedder, ['a', 'zzz']).map(Boolean)).toEqual([true, false]);
    cache.warm(embedder, ['zzz']);
    await cache.idle();
    expect(cache.peek(embedder, ['zzz'])[0]).toBeDefined();
    const vector = (await cache.embed(embedder, ['a']))[0]!;
    expect(Math.abs(dot(vector, vector) - 1)).toBeLessThan(1e-5);
  });

  test('keys include the embedder id', async () => {
    const cache = createEmbeddingCache();
    const a = hashEmbedder(8);
    const b = hashEmbedder(16);
    const [x] = await cache.embed(a, ['same text']);
    const [y] = await cache.embed(b, ['same text']);
    expect(x!.length).toBe(8);
    expect(y!.length).toBe(16);
  });

  test('is bounded by bytes', async () => {
    const embedder = hashEmbedder(256);
    const cache = createEmbeddingCache({ maxBytes: 4096 });
    for (let index = 0; index < 20; index++) await cache.embed(embedder, [`text ${index}`]);
    await cache.embed(embedder, ['text 0']);
    expect(embedder.texts).toBe(21); // text 0 was evicted and embedded again
  });

  test('a failing embedder rejects every waiter and leaves nothing cached', async () => {
    let fail = true;
    const flaky: Embedder = {
      id: 'flaky',
      dimensions: 2,
      embed: async (texts) => (fail ? Promise.reject(new Error('down')) : texts.map(() => Float32Array.of(1, 0))),
    };
    const cache = createEmbeddingCache();
    await expect(Promise.all([cache.embed(flaky, ['x']), cache.embed(flaky, ['x'])])).rejects.toThrow('down');
    fail = false;
    expect((await cache.embed(flaky, ['x']))[0]!.length).toBe(2);
  });

  test('a shared store serves other instances and its failures only cost recomputation', async () => {
    const shared = new Map<string, Float32Array>();
    const store: EmbeddingStore = {
      getMany: async (keys) => keys.map((key) => shared.get(key)),
      setMany: async (entries) =>
        void entries.forEach(([key, value]) => {
          shared.set(key, value);
        }),
    };
    const embedder = hashEmbedder();
    const first = createEmbeddingCache({ store });
    await first.embed(embedder, ['one', 'two']);
    // The store write is in the background; idle() waits for it.
    await first.idle();
    await createEmbeddingCache({ store }).embed(embedder, ['one', 'two']);
    expect(embedder.texts).toBe(2);
    const broken: EmbeddingStore = {
      getMany: async () => Promise.reject(new Error('store down')),
      setMany: async () => Promise.reject(new Error('store down')),
    };
    await createEmbeddingCache({ store: broken }).embed(embedder, ['three']);
    expect(embedder.texts).toBe(3);
  });
});

describe('openai embedder against a local fake server', () => {
  let server: Server;
  let url: string;
  const received: { body: { input: string[]; model: string }; auth: string | undefined }[] = [];
  let failuresLeft = 0;
  let hang = false;
  /** Called when a request reaches the server (set by a test that must act then). */
  let onRequest: () => void = () => undefined;

  beforeAll(async () => {
    server = createServer(async (request: IncomingMessage, response) => {
      let text = '';
      for await (const chunk of request) text += chunk;
      const body = JSON.parse(text) as { input: string[]; model: string };
      received.push({ body, auth: request.headers.authorization });
      onRequest();
      if (hang) return; // never answers
      if (failuresLeft > 0) {
        failuresLeft--;
        response.writeHead(503).end('busy');
        return;
      }
      const data = body.input.map((input, index) => ({ object: 'embedding', index, embedding: [input.length, 1, index] }));
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: data.reverse(), model: body.model }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address() as { port: number };
    url = `http://127.0.0.1:${address.port}/v1`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  test('batches, keeps order by index, sends the key', async () => {
    received.length = 0;
    const embedder = openaiEmbedder({ baseURL: url, apiKey: 'sk-test', model: 'tiny', batchSize: 2 });
    const vectors = await embedder.embed(['a', 'bb', 'ccc', 'dddd', 'eeeee']);
    expect(vectors.map((vector) => vector[0])).toEqual([1, 2, 3, 4, 5]);
    expect(received.map((entry) => entry.body.input)).toEqual([['a', 'bb'], ['ccc', 'dddd'], ['eeeee']]);
    expect(received[0]!.auth).toBe('Bearer sk-test');
    expect(received[0]!.body.model).toBe('tiny');
    expect(embedder.dimensions).toBe(3);
    expect(embedder.id).not.toContain('sk-test');
  });

  test('retries 5xx answers', async () => {
    received.length = 0;
    failuresLeft = 2;
    const vectors = await openaiEmbedder({ baseURL: url, retries: 2 }).embed(['x']);
    expect(vectors).toHaveLength(1);
    expect(received).toHaveLength(3);
  });

  test('gives up with upstream.failed after its retries, and on timeout', async () => {
    failuresLeft = 5;
    await expect(openaiEmbedder({ baseURL: url, retries: 1 }).embed(['x'])).rejects.toMatchObject({ code: 'upstream.failed' });
    failuresLeft = 0;
    hang = true;
    // The server never answers: only the 200 ms timeout can end this call.
    await expect(openaiEmbedder({ baseURL: url, retries: 0, timeoutMs: 200 }).embed(['x'])).rejects.toMatchObject({ code: 'upstream.failed' });
    const controller = new AbortController();
    // Abort once the request is in flight.
    onRequest = () => controller.abort();
    const pending = openaiEmbedder({ baseURL: url, retries: 3, timeoutMs: 5000 }).embed(['x'], { signal: controller.signal });
    await expect(pending).rejects.toMatchObject({ code: 'aborted' });
    onRequest = () => undefined;
    hang = false;
  });

  test('options are validated at construction', () => {
    expect(() => openaiEmbedder({ baseURL: 'not a url' })).toThrow(coded('options.invalid', 'baseURL'));
    expect(() => openaiEmbedder({ batchSize: 0 })).toThrow(coded('options.invalid', 'batchSize'));
  });
});

describe('offline pretrained embedders', () => {
  test('USE-lite loads from node_modules and embeds 512-dimension sentence vectors', async () => {
    const embedder = useLite();
    await checkSemantics(embedder);
    expect(await embedder.runtime()).toBe('onnx');
  });

  test("USE-lite rebuilt for onnxruntime gives the TF.js graph's vectors, batched or alone", async () => {
    const texts = [
      ...similar,
      different,
      'When did Melanie paint a sunrise?',
      'ok',
      ' ',
      // Over 128 SentencePiece tokens: both engines keep the first 128 (the onnx path tokenises
      // a prefix of long texts, doubled until it holds well over 128 tokens).
      'Caroline went to the LGBTQ support group on 7 May 2023 and said it was powerful. '.repeat(12),
      'Caroline went to the LGBTQ support group on 7 May 2023 and said it was powerful. '.repeat(40),
      `https://example.com/${'a1b2c3d4e5f6g7h8i9j0'.repeat(150)}`,
      'Numbers like 1,234 and IDs like INV-2023-0042 or https://example.com/a?b=c, émojis 🎨 and accents.',
    ];
    const [onnx, inProcess, tfjs] = [useLite({ runtime: 'onnx' }), useLite({ runtime: 'onnx', mainThread: true }), useLite({ runtime: 'tfjs' })];
    const [fromOnnx, fromInProcess, fromTfjs] = await Promise.all([onnx.embed(texts), inProcess.embed(texts), tfjs.embed(texts)]);
    // Concurrent calls share the worker and take turns; each gets its own vectors back.
    const alone = await Promise.all(texts.map(async (text) => (await onnx.embed([text]))[0]!));
    expect(await tfjs.runtime()).toBe('tfjs');
    texts.forEach((_, index) => {
      expect(fromOnnx[index]!.length).toBe(512);
      expect(dot(fromOnnx[index]!, fromTfjs[index]!)).toBeGreaterThan(0.99999);
      expect(dot(fromInProcess[index]!, fromTfjs[index]!)).toBeGreaterThan(0.99999);
      expect(dot(fromOnnx[index]!, alone[index]!)).toBeGreaterThan(0.99999);
    });
    // Different texts give different vectors (a broken graph that ignores its input would not).
    expect(dot(fromOnnx[0]!, fromOnnx[2]!)).toBeLessThan(0.9);
    expect(() => useLite({ runtime: 'gpu' as never })).toThrow(coded('options.invalid', 'runtime'));
    expect(() => useLite({ threads: 0 })).toThrow(coded('options.invalid', 'threads'));
    expect(() => useLite({ mainThread: 'yes' as never })).toThrow(coded('options.invalid', 'mainThread'));
  });

  test('a closed onnxruntime runner refuses later runs with a coded error (its worker is let go, not killed mid-run)', async () => {
    const onnx = await loadOnnxProto();
    const tensor = { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } };
    const model = encodeOnnxModel(
      onnx,
      {
        name: 'double',
        node: [{ opType: 'Add', input: ['x', 'x'], output: ['y'] }],
        input: [{ name: 'x', type: tensor }],
        output: [{ name: 'y', type: tensor }],
      },
      11,
    );
    const runner = await createOnnxRunner(model, { output: 'y' });
    expect([...(await runner.run({ x: { data: Float32Array.of(1, 2.5), dims: [2] } }))]).toEqual([2, 5]);
    await runner.close();
    await expect(runner.run({ x: { data: Float32Array.of(1), dims: [1] } })).rejects.toThrow(
      expect.objectContaining({ code: 'upstream.failed', details: expect.objectContaining({ reason: 'closed' }) }),
    );
  });

  test('transformers.js refuses to download when remote loading is off', async () => {
    const embedder = transformersEmbedder({ model: 'Xenova/all-MiniLM-L6-v2', localModelPath: join(packageRoot(), '.cache', 'models') });
    await expect(embedder.embed(['x'])).rejects.toMatchObject({ code: 'upstream.failed' });
  });
});

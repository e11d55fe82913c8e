/**
 * Lookup bench for the semantic cache: the full `cache.lookup` path (scope, exact layer, vector
 * search, verifier) over 10k and 100k cached questions in one scope, in memory (flat search
 * against usearch HNSW) and in Redis (LSH buckets). The embedder is taken out of the measurement
 * (vectors are precomputed), because it costs the same on every store.
 * Prints figures; asserts nothing. Run: npm run bench:cache
 *
 * Vectors are synthetic: random unit vectors in 512 dimensions, each query a noisy copy of a
 * stored one (cosine about 0.95), so recall@1 of the approximate indexes can be checked against
 * the known answer. Random vectors have no cluster structure, the worst case for HNSW; when the
 * USE-lite vectors of the pair texts are cached (.cache/pair-vectors, written by
 * `npm run train:verifier`), a last row repeats the HNSW measurement on those real embeddings.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createResponseCache, type ResponseCache } from '../src/cache/response-cache.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import type { Embedder } from '../src/embedders/types.js';
import { memoryStore } from '../src/stores/memory.js';
import { redisStore } from '../src/stores/redis.js';
import { seededRandom } from '../src/stores/lsh.js';
import type { Store } from '../src/stores/types.js';
import { machine, markdownTable, ms, percentile, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

const DIMENSIONS = 512;
const SIZES = (process.env.SIZES ?? '10000,100000').split(',').map(Number);
const QUERIES = Number(process.env.QUERIES ?? 500);
const markdown = studyFlags('bench:cache', {}).md;

function unit(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  for (let index = 0; index < vector.length; index++) vector[index]! /= norm;
  return vector;
}

function gaussianVector(next: () => number): Float32Array {
  const vector = new Float32Array(DIMENSIONS);
  for (let index = 0; index < DIMENSIONS; index++) vector[index] = Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
  return unit(vector);
}

/** An embedder that looks vectors up instead of computing them. */
function tableEmbedder(vectors: Map<string, Float32Array>): Embedder {
  return { id: 'bench-table', dimensions: DIMENSIONS, embed: async (texts) => texts.map((text) => vectors.get(text)!) };
}

const ask = (text: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: text }] });
const answer = (index: number) => ({
  format: 'openai' as const,
  body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `answer ${index}` }, finish_reason: 'stop' }] },
});

interface Row {
  store: string;
  size: number;
  loadSeconds: number;
  p50: number;
  p99: number;
  recall: number;
}

async function measure(
  name: string,
  store: Store,
  size: number,
  vectors: Map<string, Float32Array>,
  queries: string[],
  expected: number[],
  threshold = 0.9,
): Promise<Row> {
  const cache: ResponseCache = createResponseCache({
    store,
    embedder: tableEmbedder(vectors),
    verifier: cosineVerifier(),
    threshold,
    minCosine: Math.min(0.5, threshold),
    ttlMs: 0,
    embedTimeoutMs: 60_000,
  });
  const started = performance.now();
  const concurrency = store.kind === 'redis' ? 32 : 1;
  for (let index = 0; index < size; index += concurrency) {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, size - index) }, async (_, offset) => {
        // Stored as a miss stores it, without a lookup first (that would make loading quadratic on flat search).
        const ticket = cache.ticket(ask(`q${index + offset}`));
        if (typeof ticket === 'string') throw new Error(`bypassed: ${ticket}`);
        const [vector] = await cache.embeddings.embed(cache.embedder!, [ticket.question!]);
        await cache.commit({ ...ticket, vector }, answer(index + offset));
      }),
    );
    if (index % 10000 === 0) process.stderr.write(`\r${name} ${size}: loaded ${index}`);
  }
  const loadSeconds = (performance.now() - started) / 1000;
  process.stderr.write(`\r${name} ${size}: loaded in ${loadSeconds.toFixed(1)} s\n`);
  // Warm the embedding memo so the timings are the lookup alone.
  await cache.embeddings.embed(cache.embedder!, queries);
  const samples: number[] = [];
  let correct = 0;
  for (let index = 0; index < queries.length; index++) {
    const begin = performance.now();
    const looked = await cache.lookup(ask(queries[index]!));
    samples.push(performance.now() - begin);
    const content = looked.status === 'hit' ? (looked.response.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content : '';
    if (content === `answer ${expected[index]}`) correct++;
  }
  return { store: name, size, loadSeconds, p50: percentile(samples, 50), p99: percentile(samples, 99), recall: correct / queries.length };
}

/**
 * Real sentence embeddings, when `npm run train:verifier` has cached the USE-lite vectors of the
 * 53k pair texts: random vectors have no structure, which is the worst case for a graph index.
 */
async function realVectorRows(): Promise<Row[]> {
  const dir = '.cache/pair-vectors';
  if (!existsSync(dir)) return [];
  const name = readdirSync(dir).find((file) => file.endsWith('.texts.json'));
  if (!name) return [];
  const texts = JSON.parse(readFileSync(join(dir, name), 'utf8')) as string[];
  const bytes = readFileSync(join(dir, name.replace('.texts.json', '.f32')));
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const dimensions = all.length / texts.length;
  const held = 500;
  const size = texts.length - held;
  const vectors = new Map<string, Float32Array>();
  for (let index = 0; index < texts.length; index++) vectors.set(`q${index}`, all.subarray(index * dimensions, (index + 1) * dimensions));
  const queries: string[] = [];
  const expected: number[] = [];
  for (let index = size; index < texts.length; index++) {
    // The exact nearest stored vector is the right answer.
    const query = vectors.get(`q${index}`)!;
    let best = -1;
    let bestScore = -2;
    for (let row = 0; row < size; row++) {
      const candidate = vectors.get(`q${row}`)!;
      let score = 0;
      for (let position = 0; position < dimensions; position++) score += candidate[position]! * query[position]!;
      if (score > bestScore) [best, bestScore] = [row, score];
    }
    queries.push(`q${index}`);
    expected.push(best);
  }
  return [await measure(`memory, HNSW, real USE vectors`, memoryStore({ maxBytes: 2 ** 31 - 1 }), size, vectors, queries, expected, -1)];
}

async function startRedis(): Promise<{ url: string; child?: ChildProcess } | undefined> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL };
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const port = 20000 + (process.pid % 20000);
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG')
      return { url: `redis://127.0.0.1:${port}`, child };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  return undefined;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const largest = Math.max(...SIZES);
  const next = seededRandom(42);
  const vectors = new Map<string, Float32Array>();
  const stored: Float32Array[] = [];
  for (let index = 0; index < largest; index++) {
    const vector = gaussianVector(next);
    stored.push(vector);
    vectors.set(`q${index}`, vector);
  }
  const redis = await startRedis();
  let redisRoundTrip: number | undefined;
  for (const size of SIZES) {
    const queries: string[] = [];
    const expected: number[] = [];
    for (let index = 0; index < QUERIES; index++) {
      const target = Math.floor(next() * size);
      const noise = gaussianVector(next);
      const query = unit(stored[target]!.map((value, position) => value + 0.33 * noise[position]!));
      queries.push(`query ${size} ${index}`);
      vectors.set(`query ${size} ${index}`, query);
      expected.push(target);
    }
    const stores = (process.env.STORES ?? 'flat,hnsw,redis').split(',');
    if (stores.includes('flat'))
      rows.push(await measure('memory, flat', memoryStore({ maxBytes: 2 ** 31 - 1, annThreshold: 10_000_000 }), size, vectors, queries, expected));
    if (stores.includes('hnsw'))
      rows.push(await measure('memory, HNSW (usearch)', memoryStore({ maxBytes: 2 ** 31 - 1, annThreshold: 16 }), size, vectors, queries, expected));
    if (redis && stores.includes('redis') && size <= Number(process.env.REDIS_MAX ?? 100000)) {
      const store = redisStore({ url: redis.url, prefix: `bench:${size}:`, timeoutMs: 5000 });
      rows.push(await measure('redis, LSH 12×10 bits', store, size, vectors, queries, expected));
      // Baseline in the same run: one GET round trip to the same Redis.
      const samples: number[] = [];
      for (let index = 0; index < 500; index++) {
        const begin = performance.now();
        await store.get('nothing');
        samples.push(performance.now() - begin);
      }
      redisRoundTrip = percentile(samples, 50);
      await store.close();
    }
  }
  redis?.child?.kill();
  if (process.env.STORES === undefined || process.env.STORES.includes('real')) rows.push(...(await realVectorRows()));
  const header = ['store', 'entries', 'load', 'lookup p50', 'lookup p99', 'recall@1', 'p50 vs flat'];
  const flat = new Map(rows.filter((row) => row.store === 'memory, flat').map((row) => [row.size, row.p50]));
  const body = rows.map((row) => [
    row.store,
    row.size.toLocaleString('en'),
    `${row.loadSeconds.toFixed(1)} s`,
    ms(row.p50),
    ms(row.p99),
    `${(row.recall * 100).toFixed(1)}%`,
    flat.has(row.size) ? `${(row.p50 / flat.get(row.size)!).toFixed(2)}×` : '–',
  ]);
  console.log(markdown ? markdownTable([header, ...body]) : table([header, ...body]));
  if (redisRoundTrip !== undefined) console.log(`\nRedis GET round trip in the same run: p50 ${ms(redisRoundTrip)}.`);
  if (!redis) console.log('\n(no redis-server: Redis rows skipped)');
  console.log(`\n${machine()}`);
}

// The Redis client reconnects forever by design: the study ends when its report is printed.
runStudy('bench:cache', main);

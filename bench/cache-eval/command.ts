import { createResponseCache } from '../../src/cache/response-cache.js';
import { probePairs, scoreProbes, sweepThresholds, variantHits } from './evaluate.js';
import { readPairs, splitByQuestion } from './pairs.js';
import { cosineVerifier, DEFAULT_VERIFIER_THRESHOLD, defaultVerifier } from '../../src/cache/verifier.js';
import { createEmbeddingCache } from '../../src/embedders/memo.js';
import { openaiEmbedder } from '../../src/embedders/openai.js';
import type { Embedder } from '../../src/embedders/types.js';
import { useLite } from '../../src/embedders/use-lite.js';
import { invalidOption } from '../../src/core/errors.js';
import { Progress } from '../harness/progress.js';
import { memoryStore } from '../../src/stores/memory.js';
import { redisStore } from '../../src/stores/redis.js';
import { hashEmbedder } from '../../src/testing/index.js';
import { write } from '../../src/cli/io.js';

export interface CacheEvalFlags {
  pairs: string;
  threshold?: number;
  sweep?: boolean;
  json?: boolean;
  embedder: string;
  embedderUrl?: string;
  embedderModel?: string;
  verifier: string;
  store: string;
  redisUrl?: string;
  split: string;
  limit?: number;
  excludeRepeats?: boolean;
  progress: boolean;
}

function embedderFor(flags: CacheEvalFlags): Embedder {
  switch (flags.embedder) {
    case 'use-lite':
      return useLite();
    case 'hash':
      return hashEmbedder(256);
    case 'openai':
      return openaiEmbedder({
        baseURL: flags.embedderUrl ?? 'https://api.openai.com/v1',
        model: flags.embedderModel ?? 'text-embedding-3-small',
        apiKey: process.env.OPENAI_API_KEY,
      });
    default:
      return invalidOption('--embedder', '"use-lite", "openai" or "hash"', flags.embedder);
  }
}

/** `context-compactor cache-eval`: how often the cache hits, and wrongly, on labelled pairs. */
export async function cacheEvalCommand(flags: CacheEvalFlags): Promise<void> {
  let pairs = readPairs(flags.pairs);
  if (flags.split === 'train' || flags.split === 'test') pairs = splitByQuestion(pairs)[flags.split];
  else if (flags.split !== 'all') invalidOption('--split', '"all", "train" or "test"', flags.split);
  if (flags.excludeRepeats) {
    // A query that is itself a cached question hits the exact layer: leave those out to measure
    // the semantic layer alone.
    const cached = new Set(pairs.map((pair) => pair.a.normalize('NFC').trim()));
    pairs = pairs.filter((pair) => !cached.has(pair.b.normalize('NFC').trim()));
  }
  if (flags.limit !== undefined) pairs = pairs.slice(0, flags.limit);
  const verifier =
    flags.verifier === 'cosine'
      ? cosineVerifier()
      : flags.verifier === 'default'
        ? defaultVerifier()
        : invalidOption('--verifier', '"default" or "cosine"', flags.verifier);
  const threshold = flags.threshold ?? (flags.verifier === 'cosine' ? 0.95 : DEFAULT_VERIFIER_THRESHOLD);
  const store =
    flags.store === 'redis'
      ? redisStore({ url: flags.redisUrl ?? process.env.REDIS_URL, prefix: `cache-eval:${process.pid}:`, timeoutMs: 5000 })
      : flags.store === 'memory'
        ? memoryStore({ maxBytes: 2 * 1024 * 1024 * 1024 })
        : invalidOption('--store', '"memory" or "redis"', flags.store);
  const cache = createResponseCache({
    store,
    embedder: embedderFor(flags),
    verifier,
    threshold,
    ttlMs: flags.store === 'redis' ? 3600_000 : 0,
    embeddings: createEmbeddingCache({ maxBytes: 1024 * 1024 * 1024, maxBatch: 64 }),
    embedTimeoutMs: 600_000,
    // Every candidate the index returns is scored; the verifier decides.
    minCosine: -1,
  });
  const labels = { load: 'embedding cached questions', query: 'embedding queries', probe: 'querying the cache' };
  let phase: keyof typeof labels | undefined;
  let bar: Progress | undefined;
  let last = 0;
  try {
    const probes = await probePairs(cache, pairs, {
      onProgress: (current, done, total) => {
        if (phase !== current) {
          bar?.finish();
          phase = current;
          bar = new Progress(labels[current], total, flags.progress);
          last = 0;
        }
        if (current !== 'probe' || done % 100 === 0 || done === total) {
          bar!.tick(done - last, `${done}/${total}`);
          last = done;
        }
      },
    });
    bar?.finish();
    const thresholds = flags.sweep ? sweepThresholds(threshold) : [threshold];
    const results = thresholds.map((value) => scoreProbes(probes, value));
    if (flags.json) {
      await write(process.stdout, `${JSON.stringify(flags.sweep ? results : results[0])}\n`);
      return;
    }
    const percent = (value: number | null) => (value === null ? '–' : `${(value * 100).toFixed(1)}%`);
    const lines = [
      `${pairs.length} pairs from ${flags.pairs} (split: ${flags.split}), embedder ${cache.embedder?.id ?? 'none'}, verifier ${verifier.id}, store ${store.kind}`,
      '',
      '| threshold | true hits | false hits (hard_miss) | false hits (miss) | precision | retrieval accuracy |',
      '|---|---|---|---|---|---|',
      ...results.map(
        (row) =>
          `| ${row.threshold.toFixed(3)} | ${percent(row.trueHitRate)} | ${percent(row.falseHitRate.hard_miss)} | ${percent(row.falseHitRate.miss)} | ${percent(row.precision)} | ${percent(row.retrievalAccuracy)} |`,
      ),
    ];
    const variants = await variantHits(cache, pairs);
    lines.push(
      '',
      `Spelling variants of cached questions (case, whitespace, trailing punctuation, NFKC forms): ${variants.hits} of ${variants.total} hit with their own answer (${percent(variants.hits / Math.max(1, variants.total))}).`,
    );
    await write(process.stdout, `${lines.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

/**
 * Memory of the in-process store with many tenants: each tenant caches one answer (one 512-dimension
 * vector in its own namespace, and the answer's entries), through the response cache's real
 * lookup-and-commit path with a hashing embedder (the vector's size is what matters here, not its
 * meaning). Array-buffer and heap memory are read after a forced GC, against the store's cap.
 * Run: npm run bench:tenants (it needs node --expose-gc, which the script passes).
 * Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createResponseCache } from '../src/cache/response-cache.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import { memoryStore } from '../src/stores/memory.js';
import { hashEmbedder } from '../src/testing/index.js';
import { machine, markdownTable, table } from './harness/stats.js';
import { Progress } from './harness/progress.js';
import { studyFlags } from './harness/study.js';

const TENANTS = (process.env.TENANTS ?? '10000,20000,50000').split(',').map(Number);
const MAX_BYTES = Number(process.env.MAX_BYTES ?? 256 * 1024 * 1024);
const EMBEDDING_MEMO_BYTES = 1024 * 1024;
const markdown = studyFlags('bench:tenants', {}).md;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc (npm run bench:tenants does)');
  process.exit(1);
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

async function measure(tenants: number): Promise<string[]> {
  gc!();
  const base = process.memoryUsage();
  const store = memoryStore({ maxBytes: MAX_BYTES });
  // The embedding memo is a cache of its own, with its own bound (EMBEDDING_MEMO_BYTES): kept small
  // here so that what is measured is the store.
  const embeddings = createEmbeddingCache({ maxBytes: EMBEDDING_MEMO_BYTES });
  const cache = createResponseCache({ store, embeddings, embedder: hashEmbedder(512), verifier: cosineVerifier(), threshold: 0.97 });
  const bar = new Progress(`tenants ${tenants}`, tenants);
  for (let index = 0; index < tenants; index++) {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `What is the balance of account ${index}?` }] };
    const found = await cache.lookup(request, { tenant: `tenant-${index}` });
    if (found.status === 'miss') {
      await cache.commit(found.ticket, {
        format: 'openai',
        body: { id: `c${index}`, choices: [{ index: 0, message: { role: 'assistant', content: `The balance is ${index}.` }, finish_reason: 'stop' }] },
      });
    }
    if (index % 1000 === 999) bar.tick(1000);
  }
  bar.finish();
  await cache.idle();
  gc!();
  const after = process.memoryUsage();
  const row = [
    String(tenants),
    String(store.vectorCount),
    mb(after.arrayBuffers - base.arrayBuffers),
    mb(after.heapUsed - base.heapUsed),
    mb(after.arrayBuffers - base.arrayBuffers + after.heapUsed - base.heapUsed),
    mb(MAX_BYTES),
  ];
  await store.close();
  return row;
}

// Each size runs in a process of its own, so one size's garbage cannot count against the next.
if (process.env.TENANT_CHILD) {
  console.log(JSON.stringify(await measure(Number(process.env.TENANT_CHILD))));
  process.exit(0);
}
const rows = [['tenants', 'vectors held', 'array buffers MB', 'heap MB', 'total MB', 'store cap MB']];
for (const tenants of TENANTS) {
  const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], {
    env: { ...process.env, TENANT_CHILD: String(tenants) },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`the run at ${tenants} tenants failed`);
  rows.push(JSON.parse(child.stdout.trim().split('\n').pop()!) as string[]);
}
console.log(
  `${machine()}; memory store, one cached answer per tenant, after a forced GC (growth over an empty process, which includes the ${mb(EMBEDDING_MEMO_BYTES)} MB embedding memo)`,
);
console.log(markdown ? markdownTable(rows) : table(rows));

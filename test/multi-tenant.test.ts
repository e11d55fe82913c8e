/**
 * Randomized multi-tenant isolation through the proxy: 1,200 callers (tenants), 10,000 requests,
 * every auth style the proxy understands, a small shared pool of questions (so that the same
 * question is asked across tenants all the time), and a cache with both layers on. Every answer
 * the upstream gives is unique, so each cached answer can be traced to the tenant and question it
 * was made for. The test asserts zero cross-tenant hits, and that hits did happen (it would pass
 * trivially otherwise).
 */
import pino from 'pino';
import { afterAll, expect, test } from 'vitest';
import { createRouteTable } from '../src/compose/routes.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createResponseCache } from '../src/index.js';
import { createProxy } from '../src/proxy/server.js';
import { seededRandom } from '../src/stores/lsh.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';

const upstream = await fakeUpstream();
let served = 0;
upstream.answer = () => `answer #${++served}`;
afterAll(() => upstream.close());

// Questions every tenant may ask, paraphrases and case variants included, so both cache layers answer.
const QUESTIONS = [
  'What is my current salary?',
  'what is my current salary',
  'What is my current salary, please?',
  'How many vacation days do I have left?',
  'How many vacation days do I have left, please?',
  'Who is my manager?',
  'When is my next performance review?',
  'What is the balance of my account?',
  'WHAT IS THE BALANCE OF MY ACCOUNT?',
  'Where is my order?',
];

type Style = 'proxy-bearer' | 'proxy-x-api-key' | 'proxy-header+bearer' | 'proxy-header+api-key' | 'proxy-header+x-api-key';
const STYLES: Style[] = ['proxy-bearer', 'proxy-x-api-key', 'proxy-header+bearer', 'proxy-header+api-key', 'proxy-header+x-api-key'];

interface Caller {
  /** Who the test considers the tenant: proxy key, own credential and end user together. */
  identity: string;
  headers: Record<string, string>;
  user: string | undefined;
  /** The few questions this caller asks (repeats make hits). */
  questions: string[];
}

test('10,000 requests from 1,200 tenants in every auth style: zero cross-tenant hits', async () => {
  // Seeded, so a failure can be replayed.
  const next = seededRandom(20261130);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const keys = Array.from({ length: 300 }, (_, index) => ({ key: `pk-tenant-${index.toString().padStart(4, '0')}`, tenant: `tenant-${index}` }));
  const cache = createResponseCache({ embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.9, coalesceMs: 5000 });
  const proxy = createProxy({
    upstream: upstream.url,
    apiKey: 'sk-server-key',
    keys,
    cache,
    routes: createRouteTable({ defaults: { maxInputTokens: 4000, strategy: 'truncate', cache } }),
    logger: pino({ level: 'silent' }),
  });
  const base = `http://127.0.0.1:${await proxy.listen(0)}`;

  const callers: Caller[] = [];
  const seen = new Set<string>();
  while (callers.length < 1200) {
    const key = pick(keys).key;
    const style = pick(STYLES);
    const own = style.startsWith('proxy-header') ? `sk-own-${Math.floor(next() * 400)}` : undefined;
    const user = next() < 0.6 ? `user-${Math.floor(next() * 50)}` : undefined;
    const identity = `${key}|${own ?? ''}|${user ?? ''}`;
    if (seen.has(identity)) continue;
    seen.add(identity);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (style === 'proxy-bearer') headers.authorization = `Bearer ${key}`;
    else if (style === 'proxy-x-api-key') headers['x-api-key'] = key;
    else {
      headers['x-compactor-key'] = key;
      if (style === 'proxy-header+bearer') headers.authorization = `Bearer ${own}`;
      else if (style === 'proxy-header+api-key') headers['api-key'] = own!;
      else headers['x-api-key'] = own!;
    }
    callers.push({ identity, headers, user, questions: [pick(QUESTIONS), pick(QUESTIONS), pick(QUESTIONS)] });
  }

  // Which tenant and question each upstream answer was made for.
  const origin = new Map<string, { identity: string; question: string }>();
  let hits = 0;
  let crossTenant = 0;
  let wrongQuestion = 0;
  let failures = 0;
  const TOTAL = 10_000;
  let issued = 0;
  const worker = async () => {
    while (issued < TOTAL) {
      issued++;
      const caller = pick(callers);
      const question = pick(caller.questions);
      const response = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: caller.headers,
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }], ...(caller.user ? { user: caller.user } : {}) }),
      });
      const body = (await response.json()) as { choices?: { message: { content: string } }[] };
      if (response.status !== 200) {
        failures++;
        continue;
      }
      const answer = body.choices![0]!.message.content;
      if (response.headers.get('x-compactor-cache') === 'hit') {
        hits++;
        const made = origin.get(answer);
        if (!made || made.identity !== caller.identity) crossTenant++;
        // Only the same question up to case, spacing and punctuation, or a paraphrase the verifier accepts.
        else if (made.question.toLowerCase().slice(0, 12) !== question.toLowerCase().slice(0, 12)) wrongQuestion++;
      } else origin.set(answer, { identity: caller.identity, question });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  await proxy.close(1000);

  expect(failures).toBe(0);
  expect(seen.size).toBeGreaterThanOrEqual(1000);
  expect(crossTenant).toBe(0);
  expect(wrongQuestion).toBe(0);
  // Both layers answered within tenants: the test could have caught a leak.
  expect(hits).toBeGreaterThan(TOTAL / 4);
  const stats = cache.stats();
  expect(stats.hits.exact).toBeGreaterThan(0);
  expect(stats.hits.semantic).toBeGreaterThan(0);
}, 120_000);

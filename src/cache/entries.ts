import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { isAbortError } from '../core/errors.js';
import type { EmbeddingCache } from '../embedders/memo.js';
import type { Embedder } from '../embedders/types.js';
import { FORMATS } from '../formats/registry.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';
import type { Store } from '../stores/types.js';
import { conflict } from './conflict.js';
import { profileMemo } from './profile.js';
import type { ResolvedCacheOptions } from './options.js';
import type { ResponseCacheStats, CacheTicket, ProbeMatch } from './types.js';
import { sha } from './keys.js';

export interface EntryDeps {
  options: ResolvedCacheOptions;
  store: Store;
  embedder: Embedder | null;
  embeddings: EmbeddingCache;
  stats: ResponseCacheStats;
  /** Count a failure recovered from, by component. */
  fail: (component: string) => void;
  /** Work that runs after the request (a backfill): `idle()` waits for it. */
  track: (work: Promise<boolean>) => Promise<boolean>;
}

/** How entries, their pointers and vectors, and each tenant's generation are laid out in the store. */
export function createEntries({ options, store, embedder, embeddings, stats, fail, track }: EntryDeps) {
  const { settings, verifier, threshold } = options;
  const profileOf = profileMemo();
  const now = settings.clock ?? Date.now;
  /** The entry the exact layer points to, if both the pointer and the entry are still there. */
  async function exactEntry(exactKey: string): Promise<{ question: string; response: CachedResponse } | undefined> {
    const id = await store.get(`rc:x:${exactKey}`);
    const entry = id ? await store.get(`rc:e:${id}`) : undefined;
    return entry ? (JSON.parse(entry) as { question: string; response: CachedResponse }) : undefined;
  }

  /** The best-scoring stored entry near `vector`, whatever its score. */
  async function nearest(namespace: string, question: string, vector: Float32Array, streamed: boolean): Promise<ProbeMatch | undefined> {
    const matches = await store.searchVectors(namespace, vector, settings.candidates, settings.minCosine);
    if (matches.length === 0) return undefined;
    const entries = await store.getMany(matches.map((match) => `rc:e:${match.id}`));
    let best: ProbeMatch | undefined;
    entries.forEach((text, index) => {
      if (!text) return;
      const entry = JSON.parse(text) as { question: string; response: CachedResponse };
      if (!FORMATS[entry.response.format].replayable(entry.response, streamed)) return;
      let score = verifier.score(question, entry.question, matches[index]!.score);
      if (!settings.allowConflicts && conflict(profileOf(question), profileOf(entry.question))) {
        if (score >= threshold) stats.guarded++;
        score = 0;
      }
      if (!best || score > best.score) best = { score, cosine: matches[index]!.score, question: entry.question, response: entry.response };
    });
    return best;
  }

  /** Store a completed answer under its ticket's keys, unless its format says it is not a finished answer. */
  async function storeAnswer(ticket: CacheTicket, response: CachedResponse): Promise<boolean> {
    const format = FORMATS[response.format] as (typeof FORMATS)[FormatName] | undefined;
    const reason = format ? format.uncacheableReason(response, settings.cacheToolCalls) : 'incomplete';
    const serialized = reason ? '' : JSON.stringify({ question: ticket.question ?? null, response, at: now() });
    const skip = reason ?? (serialized.length > settings.maxEntryBytes ? 'too-large' : null);
    if (skip) {
      stats.skipped[skip] = (stats.skipped[skip] ?? 0) + 1;
      return false;
    }
    const id = createHash('sha256').update(`${ticket.exactKey}\u0002${serialized}`).digest('base64url').slice(0, 32);
    const ttl = ticket.ttlMs > 0 ? ticket.ttlMs : undefined;
    try {
      // Entry first, pointers after: a reader never follows a pointer to a missing entry it
      // could misread, and a failure half-way leaves at worst an unreferenced entry.
      await store.set(`rc:e:${id}`, serialized, ttl);
      await store.set(`rc:x:${ticket.exactKey}`, id, ttl);
      if (ticket.namespace && ticket.vector) await store.addVector(ticket.namespace, id, ticket.vector, ttl);
    } catch (error) {
      if (isAbortError(error)) throw error;
      fail('store');
      return false;
    }
    stats.stored++;
    // Stored without a vector (the query's embedding missed its deadline, as in a cold process):
    // embed it now, off the request path, so the entry can be a semantic hit too.
    if (ticket.namespace && !ticket.vector && ticket.question && embedder) track(backfill(ticket.namespace, ticket.question, id, ttl));
    return true;
  }

  async function backfill(namespace: string, question: string, id: string, ttl: number | undefined): Promise<boolean> {
    try {
      const [vector] = (await embeddings.embed(embedder!, [question])) as [Float32Array];
      await store.addVector(namespace, id, vector, ttl);
      stats.backfilled++;
      return true;
    } catch {
      fail('backfill');
      return false;
    }
  }

  // Generations: a tenant's keys include its generation, so `purge` (a new generation) leaves its
  // older entries unreachable. Read through a short memo: another instance's purge takes effect
  // here within GENERATION_MEMO_MS.
  const GENERATION_MEMO_MS = 1000;
  const generations = new LRUCache<string, { value: string; at: number }>({ max: 10_000 });
  const generationKey = (tenant: string | undefined) => `rc:g:${sha(tenant ?? '')}`;
  async function generationOf(tenant: string | undefined): Promise<string> {
    const key = generationKey(tenant);
    const memo = generations.get(key);
    if (memo && now() - memo.at < GENERATION_MEMO_MS) return memo.value;
    const value = (await store.get(key)) ?? '';
    generations.set(key, { value, at: now() });
    return value;
  }
  const withGeneration = (ticket: CacheTicket, generation: string): CacheTicket =>
    generation === ''
      ? ticket
      : {
          ...ticket,
          generation,
          exactKey: sha(`${ticket.exactKey}\u0002${generation}`),
          namespace: ticket.namespace === undefined ? undefined : sha(`${ticket.namespace}\u0002${generation}`),
        };
  async function newGeneration(tenant: string): Promise<void> {
    const value = `${now().toString(36)}.${Math.random().toString(36).slice(2)}`;
    const key = generationKey(tenant);
    await store.set(key, value);
    generations.set(key, { value, at: now() });
  }
  return { exactEntry, nearest, storeAnswer, generationOf, withGeneration, newGeneration };
}

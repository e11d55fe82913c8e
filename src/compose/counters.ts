import { LRUCache } from 'lru-cache';
import { TokenCounter } from '../tokens/counter.js';
import type { ModelInfo } from '../tokens/models.js';
import type { EncodingName } from '../tokens/tokenizer.js';
import type { ResolvedOptions } from './options.js';

/** One token counter per encoding and multiplier, sharing a memo of message counts bounded by bytes. */
export function tokenCounters(settings: ResolvedOptions): (info: ModelInfo | undefined) => Promise<TokenCounter> {
  // Bounded by bytes, not entries: lru-cache preallocates when `max` is set, which would make
  // every compactor (one per route) pay for the largest cache up front.
  const memo = new LRUCache<string, number>({ maxSize: settings.tokenCacheBytes, sizeCalculation: (_value, key) => 2 * key.length + 64 });
  const counters = new Map<string, Promise<TokenCounter>>();

  return function counterFor(info: ModelInfo | undefined): Promise<TokenCounter> {
    const encoding: EncodingName = info?.encoding ?? 'o200k_base';
    const multiplier = info?.encoding ? 1 : (info?.tokenMultiplier ?? settings.approximateTokenMultiplier);
    const key = `${encoding}|${multiplier}`;
    let counter = counters.get(key);
    if (counter === undefined) {
      counter = Promise.resolve(settings.tokenizer(encoding)).then(
        (tokenizer) => new TokenCounter({ tokenizer, multiplier, imageTokens: settings.imageTokens, memo }),
      );
      counter.catch(() => counters.delete(key));
      counters.set(key, counter);
    }
    return counter;
  };
}

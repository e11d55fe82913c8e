import type { CompactResult } from '../compose/types.js';
import { CompactorError } from '../core/errors.js';
import type { CompactionStats } from '../core/stats.js';
import type { CachedResponse, WireFormat } from '../formats/wire-format.js';
import { type Recorder, recordOf } from './recorder.js';

/**
 * Shadow mode sends the request as it came, so it need not wait for the compaction it reports on.
 * An adapter waits `shadowWaitMs` for it; past that, the request goes ahead with these provisional
 * stats, which the compaction fills in (the same object) when it ends.
 */

/** Whether `promise` settles (either way) within `ms`. Its outcome stays the caller's to read. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stats of a shadow request sent before its compaction ended: pending until `followUp` fills them in. */
export function pendingStats(format: WireFormat, body: object): CompactionStats {
  const model = (body as { model?: unknown }).model;
  const { messages, input } = body as { messages?: unknown; input?: unknown };
  const list = messages ?? input;
  const count = Array.isArray(list) ? list.length : 0;
  return {
    model: typeof model === 'string' ? model : undefined,
    encoding: '',
    format: format.name,
    budget: null,
    tokensBefore: 0,
    tokensAfter: 0,
    messagesBefore: count,
    messagesAfter: count,
    ms: 0,
    strategies: [],
    guard: { repaired: 0, droppedForBudget: 0 },
    failures: [],
    passThrough: 'shadow',
    shadow: { pending: true, tokensAfter: 0, messagesAfter: count, tokensSaved: 0, strategies: [] },
  };
}

/**
 * Follow a compaction the request went ahead of: when it ends, the provisional stats become its
 * stats. Resolves to them, or, when the compaction threw, to them marked with the error's code.
 */
export function followUp(stats: CompactionStats, compacting: Promise<CompactResult<object>>): Promise<CompactionStats> {
  return compacting.then(
    (result) => {
      for (const key of Object.keys(stats)) delete (stats as unknown as Record<string, unknown>)[key];
      Object.assign(stats, result.stats);
      return stats;
    },
    (error: unknown) => {
      const { pending: _, ...rest } = stats.shadow!;
      stats.shadow = { ...rest, rejected: CompactorError.isInstance(error) ? error.code : 'internal' };
      return stats;
    },
  );
}

/**
 * `commit` and `release` for a compaction that has not ended: whichever is called first decides,
 * as with a compaction's own (a release after a commit is a no-op), and acts once it has ended.
 */
export function committerLater(compacting: Promise<CompactResult<object>>): {
  commit: (response: CachedResponse) => Promise<boolean>;
  release: () => void;
} {
  const ended = compacting.then(
    (result) => (result.kind === 'compacted' ? result : undefined),
    () => undefined,
  );
  let decided = false;
  return {
    async commit(response) {
      if (decided) return false;
      decided = true;
      const result = await ended;
      return result?.commit ? result.commit(response) : false;
    },
    release() {
      if (decided) return;
      decided = true;
      void ended.then((result) => result?.release?.());
    },
  };
}

/** A shadow request sent on before its compaction ended: stats and cache follow when it does. */
/** A `PreparedForward` (exchange.ts) for a request that goes ahead of its compaction. */
export interface Ahead {
  kind: 'forward';
  format: WireFormat;
  stats: CompactionStats;
  settled: Promise<CompactionStats>;
  request: object;
  headers: Record<string, string>;
  commit: (response: CachedResponse) => Promise<boolean>;
  release: () => void;
  record(status: number, contentType: string | null | undefined): Recorder | undefined;
}

export function goAhead(format: WireFormat, body: object, compacting: Promise<CompactResult<object>>, withHeaders: boolean): Ahead {
  const stats = pendingStats(format, body);
  const { commit, release } = committerLater(compacting);
  return {
    kind: 'forward',
    format,
    stats,
    settled: followUp(stats, compacting),
    request: body,
    headers: withHeaders ? { 'x-compactor-mode': 'shadow', 'x-compactor-shadow': 'pending' } : {},
    commit,
    release,
    record: recordOf(format.name, commit, release),
  };
}

import { createHash } from 'node:crypto';
import type { FailureRecord } from '../../src/core/strategy.js';
import type { ChatMessage, Messages } from '../../src/core/types.js';
import type { Partition } from '../../src/core/units.js';
import { messageText } from '../../src/text/message-text.js';
import type { SummaryStore } from '../../src/summarizers/queue.js';

/**
 * Early cuts: when a question needs excerpts and the window leaves no room for them, cache-aware
 * cuts the window's front at once, as its next cut would have, and records where. The window is
 * otherwise derived from the history alone; with these records (a few bytes per cut, in the
 * runtime's layout store, shared through Redis when the runtime has a store) every later request
 * and every instance derives the same window, so the cut costs one cache miss, like any other.
 * Without the record (a cold instance with no shared store), the window is derived without that
 * cut: one more miss, then the layout is stable again.
 */
interface Mark {
  /** Index of the user message that was the latest when the cut was made. */
  index: number;
  /** Hash of the history through that message: a record never applies to another branch. */
  hash: string;
  /** Tokens the cut made room for. */
  claim: number;
}

/** Cuts kept per conversation; the oldest are forgotten (a window derived without one misses the cache once). */
export const MAX_EARLY_CUTS = 256;

const messageBytes = (message: ChatMessage) => `${message.role}\u0000${messageText(message)}\u0000`;

/** The hash of the history through each of `indices`, in one pass. */
function chainHashes(messages: Messages, indices: readonly number[]): Map<number, string> {
  const wanted = new Set(indices);
  let last = -1;
  for (const index of indices) last = Math.max(last, index);
  const hash = createHash('sha256');
  const result = new Map<number, string>();
  for (let index = 0; index <= last && index < messages.length; index++) {
    hash.update(messageBytes(messages[index]!));
    if (wanted.has(index)) result.set(index, hash.copy().digest('base64url').slice(0, 22));
  }
  return result;
}

function parseMarks(value: string | undefined): Mark[] {
  if (value === undefined) return [];
  try {
    const parsed = JSON.parse(value) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (mark): mark is Mark =>
        typeof mark === 'object' &&
        mark !== null &&
        Number.isInteger(mark.index) &&
        mark.index >= 0 &&
        typeof mark.hash === 'string' &&
        Number.isInteger(mark.claim) &&
        mark.claim >= 0,
    );
  } catch {
    return [];
  }
}

/** A conversation's key: the tenant and the settings the layout depends on, and its start (the messages through the first user message). */
export function earlyCutKey(messages: Messages, settings: readonly unknown[]): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(settings));
  for (const message of messages) {
    hash.update(messageBytes(message));
    if (message.role === 'user') break;
  }
  return `cache-aware:${hash.digest('base64url').slice(0, 32)}`;
}

export interface EarlyCuts {
  /** Tokens claimed, by unit (for `stableHistory`'s `claims`). */
  readonly claims: Map<number, number>;
  /** Records a cut made on this request, before the user message at `latestStart`. */
  record(latestStart: number, claim: number): Promise<FailureRecord | undefined>;
}

/** Loads a conversation's early cuts; a store that fails gives none (the failure is returned, the request goes on). */
export async function loadEarlyCuts(
  store: SummaryStore,
  key: string,
  messages: Messages,
  parts: Partition,
  latestStart: number,
): Promise<{ cuts: EarlyCuts; failure?: FailureRecord }> {
  let marks: Mark[] = [];
  let failure: FailureRecord | undefined;
  try {
    marks = parseMarks(await store.get(key));
  } catch (error) {
    failure = { strategy: 'cache-aware', code: 'upstream.failed', message: `layout store failed, window without early cuts: ${(error as Error).message}` };
  }
  const claims = new Map<number, number>();
  if (marks.length > 0) {
    const chain = chainHashes(
      messages,
      marks.map((mark) => mark.index),
    );
    for (const mark of marks) {
      if (mark.index >= latestStart || messages[mark.index]?.role !== 'user' || chain.get(mark.index) !== mark.hash) continue;
      claims.set(parts.unitOf[mark.index]!, mark.claim);
    }
  }
  const cuts: EarlyCuts = {
    claims,
    async record(index, claim) {
      // With the store unreadable, a write would overwrite the cuts it holds.
      if (failure) return undefined;
      const hash = chainHashes(messages, [index]).get(index)!;
      // Marks of other branches of the same start are kept (up to the bound): they never match this one.
      const next = [...marks.filter((mark) => mark.index !== index || mark.hash !== hash), { index, hash, claim }].slice(-MAX_EARLY_CUTS);
      try {
        await store.set(key, JSON.stringify(next));
        return undefined;
      } catch (error) {
        return { strategy: 'cache-aware', code: 'upstream.failed', message: `layout store failed, early cut not recorded: ${(error as Error).message}` };
      }
    },
  };
  return failure ? { cuts, failure } : { cuts };
}

import type { ChatMessage, Messages } from './types.js';
import type { Partition } from './units.js';

/**
 * A history window whose front moves rarely, so that providers' prompt caches keep hitting.
 *
 * Chat clients resend the whole history every turn, and providers bill the part of a prompt that
 * repeats the previous one's start at a tenth to a half of the price. A recency window that slides
 * by one turn every turn rewrites the start of the prompt every time and throws that discount
 * away. This window grows by appending until it holds `high` tokens, then is compacted in one step
 * down to `low` tokens (dropping whole turns from its front), then grows again: between
 * compactions, each prompt starts with the previous one's bytes.
 *
 * The compaction points are derived from the history alone, replaying its units from the start:
 * every request of a conversation, on any instance, computes the same window start, with no state
 * kept between requests.
 */
export interface WindowLimits {
  /** Tokens the window may hold before it is compacted. */
  high: number;
  /** Tokens it is compacted down to (at most; whole turns are dropped). */
  low: number;
  /**
   * Early cuts a strategy made, by unit: when the replay reaches that unit, the window first drops
   * whole groups from its front until it holds at most `high` less the claimed tokens (room the
   * strategy took, on the request that unit was the latest of, for what it adds after the window).
   */
  claims?: ReadonlyMap<number, number>;
}

/**
 * The index, into `partition.units`, of the first unit of the window over the droppable units
 * `eligible` accepts (by default all of them; pinned units and the protected latest turn never take
 * part). Every eligible unit from there on is in the window. Returns `units.length` when empty.
 * `groupOf` numbers the groups the window drops whole, in order (by default, turns).
 */
export function windowStart(
  partition: Partition,
  limits: WindowLimits,
  eligible: (unit: number) => boolean = () => true,
  groupOf: (unit: number) => number = (unit) => partition.units[unit]!.turn,
): number {
  const units = partition.units;
  const droppable: number[] = [];
  for (let unit = 0; unit < units.length; unit++) if (!units[unit]!.protected && eligible(unit)) droppable.push(unit);
  if (droppable.length === 0) return units.length;
  const high = Math.max(0, limits.high);
  const low = Math.max(0, Math.min(limits.low, high));
  // `start` indexes `droppable`; `size` is the tokens of droppable[start..position].
  let start = 0;
  let size = 0;
  const claims = limits.claims;
  for (let position = 0; position < droppable.length; position++) {
    const claim = claims?.get(droppable[position]!);
    if (claim !== undefined) {
      while (start < position && size + claim > high) {
        const group = groupOf(droppable[start]!);
        while (start < position && groupOf(droppable[start]!) === group) {
          size -= units[droppable[start]!]!.tokens;
          start++;
        }
      }
    }
    size += units[droppable[position]!]!.tokens;
    if (size <= high) continue;
    // Compact: drop whole groups (turns, unless told otherwise) from the front until the window is
    // at the low-water mark. The newest group stays, even alone over the mark: a group is never split.
    const newest = groupOf(droppable[position]!);
    while (size > low) {
      const group = groupOf(droppable[start]!);
      if (group === newest) break;
      while (groupOf(droppable[start]!) === group) {
        size -= units[droppable[start]!]!.tokens;
        start++;
      }
    }
  }
  return droppable[start]!;
}

export interface StableHistoryOptions {
  budget: number;
  /** Tokens outside the messages (reply priming, tools). */
  fixedTokens: number;
  /** Tokens set aside for what follows the window: the latest turn, and anything a strategy adds there. Fixed per conversation, so the window does not move with them. */
  reserve: number;
  /** The window is compacted down to this share of its room. 1 slides it by whole turns on every request. */
  lowWater: number;
  /** Keep the first N user turns before the window (they often state the task), if they fit. */
  firstTurns: number;
  /** The groups the window is cut by, numbered in order (by default, turns; see `windowStart`). */
  groupOf?: (unit: number) => number;
  /**
   * The provider's shortest cached prefix, in tokens: the window is not cut below what keeps the
   * prompt's start that long (at most 90% of its room), since a shorter prefix is not cached at all.
   */
  minCachedPrefix?: number;
  /** Early cuts, by unit (see `WindowLimits.claims`). */
  claims?: ReadonlyMap<number, number>;
}

export interface StableHistory {
  /** Per unit: 1 when kept (pinned, first turns, window, latest turn). */
  keep: Uint8Array;
  /** Droppable units left out, in chronological order. */
  dropped: number[];
  /** Tokens of the budget the kept units leave free. */
  left: number;
  /** The last kept message before the window (the end of the prefix that changes only with the system prompt), if any. */
  prefixEnd: ChatMessage | undefined;
  /** The last message of the window (the end of the part that only grows between compactions), if any. */
  windowEnd: ChatMessage | undefined;
  /** Units the request itself had to drop from the window's front (its latest turn outgrew the reserve): this request breaks the cached prefix. */
  trimmed: number;
  /** The unit the window starts at, before this request's own trimming (see `windowStart`). */
  start: number;
  /** Tokens the window may hold (its high-water mark). */
  room: number;
}

/**
 * The stable part of a compacted prompt: system and developer messages, the first turns if asked,
 * then the window (see `windowStart`), then the latest turn. Its room is the budget less fixed
 * tokens, pinned messages, first turns and `reserve`, so that it does not change from request to
 * request; only when the latest turn outgrows the reserve are the window's oldest turns dropped
 * for that one request.
 */
export function stableHistory(messages: Messages, parts: Partition, options: StableHistoryOptions): StableHistory {
  const units = parts.units;
  const keep = new Uint8Array(units.length);
  const latestStart = parts.latestUser >= 0 ? parts.latestUser : messages.length;
  let pinnedTokens = 0;
  for (let unit = 0; unit < units.length; unit++) {
    if (!units[unit]!.protected) continue;
    keep[unit] = 1;
    if (units[unit]!.indices[0]! < latestStart) pinnedTokens += units[unit]!.tokens;
  }
  let room = options.budget - options.fixedTokens - pinnedTokens - options.reserve;
  // The first turns, if they fit: they sit before the window and never move.
  const first = new Uint8Array(units.length);
  for (let turn = 1; turn <= Math.min(options.firstTurns, parts.turns); turn++) {
    if (parts.turnTokens[turn]! > room) break;
    room -= parts.turnTokens[turn]!;
    for (let unit = 0; unit < units.length; unit++) if (!units[unit]!.protected && units[unit]!.turn === turn) first[unit] = 1;
  }
  for (let unit = 0; unit < units.length; unit++) if (first[unit]) keep[unit] = 1;
  const windowRoom = room;
  // Not below the shortest cached prefix, where the budget can hold one at all.
  const prefixRoom = options.budget - options.reserve - options.fixedTokens;
  const minPrefix = options.minCachedPrefix ?? 0;
  const floor = minPrefix > 0 && minPrefix <= prefixRoom ? Math.min(0.9 * room, minPrefix - (prefixRoom - room)) : 0;
  const start = windowStart(
    parts,
    { high: room, low: Math.max(room * options.lowWater, floor), ...(options.claims ? { claims: options.claims } : {}) },
    (unit) => !first[unit],
    options.groupOf,
  );
  for (let unit = start; unit < units.length; unit++) if (!units[unit]!.protected && !first[unit]) keep[unit] = 1;

  // This request's own fit: the window gives up its oldest turns if the latest turn outgrew the reserve.
  let tokens = options.fixedTokens;
  for (let unit = 0; unit < units.length; unit++) if (keep[unit]) tokens += units[unit]!.tokens;
  const window: number[] = [];
  for (let unit = start; unit < units.length; unit++) if (keep[unit] && !units[unit]!.protected && !first[unit]) window.push(unit);
  let trimmed = 0;
  while (tokens > options.budget && trimmed < window.length) {
    const turn = units[window[trimmed]!]!.turn;
    while (trimmed < window.length && units[window[trimmed]!]!.turn === turn) {
      keep[window[trimmed]!] = 0;
      tokens -= units[window[trimmed]!]!.tokens;
      trimmed++;
    }
  }

  // Past the window, the first turns give way too, newest first.
  for (let unit = units.length - 1; unit >= 0 && tokens > options.budget; unit--) {
    if (!first[unit] || !keep[unit]) continue;
    const turn = units[unit]!.turn;
    for (let member = 0; member < units.length; member++) {
      if (first[member] && keep[member] && units[member]!.turn === turn) {
        keep[member] = 0;
        tokens -= units[member]!.tokens;
        trimmed++;
      }
    }
  }

  const dropped: number[] = [];
  for (let unit = 0; unit < units.length; unit++) if (!keep[unit]) dropped.push(unit);
  const windowFirst = trimmed < window.length ? units[window[trimmed]!]!.indices[0]! : latestStart;
  let prefixEnd: ChatMessage | undefined;
  let windowEnd: ChatMessage | undefined;
  for (let index = 0; index < latestStart; index++) {
    if (!keep[parts.unitOf[index]!]) continue;
    if (index < windowFirst) prefixEnd = messages[index];
    else windowEnd = messages[index];
  }
  return { keep, dropped, left: options.budget - tokens, prefixEnd, windowEnd, trimmed, start, room: windowRoom };
}

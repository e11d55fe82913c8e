import { hash } from 'node:crypto';
import type { StrategyContext } from '../../src/core/strategy.js';
import type { ChatMessage, Messages } from '../../src/core/types.js';
import type { Partition } from '../../src/core/units.js';
import { messageKey } from '../../src/tokens/counter.js';
import { chunkTokensFor, type SummarizeSettings } from './options.js';

export interface Item {
  key: string;
  /** The first message index this item stands for (where its summary goes). */
  first: number;
  /** Message indices this item stands for (non-protected members of its chunks). */
  members: number[];
  tokens: number;
  level: number;
  text?: string;
}

export interface Chunk {
  units: number[];
  tokens: number;
}

export function keyOf(parts: readonly string[]): string {
  return hash('sha256', parts.join('\u0000'), 'base64url');
}

/**
 * The history's fixed chunks over its droppable units (sessions, and every `chunkTokens` at turn
 * boundaries). Boundaries depend only on what precedes them, so a chunk's membership never
 * changes as the conversation grows.
 */
export class Chunks {
  readonly parts: Partition;
  readonly list: Chunk[] = [];
  /** Per unit, its chunk (protected units: -1). */
  readonly chunkOf: Int32Array;

  constructor(
    readonly settings: SummarizeSettings,
    readonly messages: Messages,
    context: StrategyContext,
  ) {
    const parts = context.partition(messages);
    this.parts = parts;
    this.chunkOf = new Int32Array(parts.units.length).fill(-1);
    const header = settings.sessionHeader;
    const bySession =
      settings.chunking === 'session' ||
      (settings.chunking === 'auto' && messages.some((message) => typeof message.content === 'string' && header.test(message.content)));
    const size = settings.chunkTokens === 'auto' ? chunkTokensFor(context.budget) : settings.chunkTokens;
    let current: Chunk | undefined;
    for (let unit = 0; unit < parts.units.length; unit++) {
      const entry = parts.units[unit]!;
      if (entry.protected) continue;
      const first = messages[entry.indices[0]!]!;
      const startsSession = bySession && typeof first.content === 'string' && header.test(first.content);
      const startsTurn = first.role === 'user';
      if (!current || startsSession || (startsTurn && current.tokens >= size)) {
        current = { units: [], tokens: 0 };
        this.list.push(current);
      }
      current.units.push(unit);
      current.tokens += entry.tokens;
      this.chunkOf[unit] = this.list.length - 1;
    }
  }

  /** The item of a chunk, to summarize. */
  item(chunk: number): Item {
    const members = this.list[chunk]!.units.flatMap((unit) => this.parts.units[unit]!.indices).sort((a, b) => a - b);
    return {
      key: keyOf([this.settings.summarizer.id, String(this.settings.summaryTokens), ...members.map((index) => messageKey(this.messages[index]!))]),
      first: members[0]!,
      members,
      tokens: this.list[chunk]!.tokens,
      level: 0,
    };
  }

  sourceOf(item: Item): ChatMessage[] {
    return item.members.map((index) => this.messages[index]!);
  }
}

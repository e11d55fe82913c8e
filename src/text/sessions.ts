import type { ChatMessage } from '../core/types.js';

/** Where each message's session starts, and its header (e.g. `[Session 5, 1:56 pm on 8 May, 2023]`). */
export interface Sessions {
  /** For each message, the index of the first message of its session, or -1. */
  first: Int32Array;
  /** For each message, its session's header text, or ''. */
  header: string[];
}

export function sessions(messages: readonly ChatMessage[], pattern: RegExp | null): Sessions {
  const first = new Int32Array(messages.length).fill(-1);
  const header: string[] = new Array(messages.length).fill('');
  if (!pattern) return { first, header };
  let start = -1;
  let text = '';
  for (let index = 0; index < messages.length; index++) {
    const content = messages[index]!.content;
    const match = typeof content === 'string' ? pattern.exec(content) : null;
    if (match && match.index === 0) {
      start = index;
      text = match[0];
    }
    first[index] = start;
    header[index] = text;
  }
  return { first, header };
}

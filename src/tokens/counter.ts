import { hash } from 'node:crypto';
import type { LRUCache } from 'lru-cache';
import type { ChatMessage, ChatRequest, FunctionDefinition, Messages, ToolDefinition } from '../core/types.js';
import { throwIfAborted } from '../core/errors.js';
import { nextTurn, timeSlicer } from '../core/turns.js';
import { runCuts } from './bounded.js';
import { imageTokens } from './images.js';
import type { TextTokenizer } from './tokenizer.js';

/** OpenAI cookbook: every message costs 3 tokens of framing, every reply is primed with 3. */
export const TOKENS_PER_MESSAGE = 3;
export const TOKENS_PER_NAME = 1;
export const REPLY_PRIMING_TOKENS = 3;
/** Not published by OpenAI: our estimate of the framing around one tool call in an assistant message. */
export const TOKENS_PER_TOOL_CALL = 3;

export interface TokenCounterOptions {
  tokenizer: TextTokenizer;
  /** Scales every count; 1 for exact OpenAI encodings, >1 to pad approximations for other providers. */
  multiplier: number;
  /** Tokens for an image whose size is unknown. */
  imageTokens: number;
  /** Shared memo of per-message counts. */
  memo: LRUCache<string, number>;
}

/** Keys short messages by their content itself (exact, no hashing cost) and long ones by SHA-1. */
export function messageKey(message: ChatMessage): string {
  let plain = typeof message.content === 'string';
  if (plain) {
    for (const key in message) {
      if (key !== 'role' && key !== 'content' && key !== 'name') {
        plain = false;
        break;
      }
    }
  }
  const raw = plain ? `${message.role}\u0001${message.name ?? ''}\u0001${message.content as string}` : JSON.stringify(message);
  return raw.length <= 512 ? raw : `#${hash('sha1', raw, 'base64')}`;
}

/** Characters of text counted between two yields to the event loop (a few milliseconds of BPE). */
export const COUNT_SLICE_CHARS = 64 * 1024;

/**
 * Cut a long text into slices of about `size` characters whose token counts add up to the whole's:
 * each cut falls where every tiktoken encoding's pre-tokenizer already splits, so no token spans a
 * cut: before a space between two letters ("…word| word…"), else between a letter and a digit
 * ("…id|42…"), else at one of the places where the bounded count cuts an over-long run anyway
 * (`runCuts`). A text with none of these (a run of digits) is one slice, counted in linear time.
 */
export function countingSlices(text: string, size = COUNT_SLICE_CHARS): string[] {
  return [...slicesOf(text, size)];
}

/**
 * The slices of `countingSlices`, one at a time: finding each cut scans at most two slices' worth
 * of text, so a caller that yields between slices never holds the event loop for the whole text.
 */
export function* slicesOf(text: string, size = COUNT_SLICE_CHARS): Generator<string> {
  let start = 0;
  while (text.length - start > size) {
    let cut = -1;
    const end = Math.min(text.length - 1, start + size * 2);
    for (let at = start + size; at < end; at++) {
      if (isNaturalCut(text, at)) {
        cut = at;
        break;
      }
    }
    if (cut < 0) {
      // `start` is a cut itself (or 0): the bounded count's cuts past it are those of the text from it.
      const window = runCuts(text.slice(start, end + 1));
      const forced = window.find((at) => at >= size);
      if (forced !== undefined) cut = start + forced;
    }
    if (cut < 0) break;
    yield text.slice(start, cut);
    start = cut;
  }
  yield text.slice(start);
}

/** Whether every tiktoken pre-tokenizer splits `text` before `at` (see `countingSlices`). */
export function isNaturalCut(text: string, at: number): boolean {
  const code = text.charCodeAt(at);
  if (code === 32) return isLetter(text[at - 1]!) && isLetter(text[at + 1]!);
  return code >= 48 && code <= 57 && isLetter(text[at - 1]!);
}

const LETTER = /\p{L}/u;
const isLetter = (char: string): boolean => (char >= 'a' && char <= 'z') || (char >= 'A' && char <= 'Z') || (char > '\u007f' && LETTER.test(char));

function stripPeriod(text: string): string {
  return text.endsWith('.') ? text.slice(0, -1) : text;
}

/**
 * Counts tokens as OpenAI bills chat-completions requests (the cookbook's `num_tokens_from_messages`
 * and `num_tokens_for_tools`), memoized per message by content. Counts are additive over messages,
 * so the cost of a request is the sum of its messages plus priming and tools.
 */
export class TokenCounter {
  readonly encoding: string;
  readonly #tokenizer: TextTokenizer;
  readonly #multiplier: number;
  readonly #imageTokens: number;
  readonly #memo: LRUCache<string, number>;
  readonly #prefix: string;
  readonly #toolsMemo = new WeakMap<object, number>();
  // Within a request the same message objects are counted several times (before, per strategy,
  // in the guard); an identity memo makes those repeats free and dies with the request.
  readonly #identity = new WeakMap<ChatMessage, number>();

  constructor(options: TokenCounterOptions) {
    this.#tokenizer = options.tokenizer;
    this.encoding = options.tokenizer.encoding;
    this.#multiplier = options.multiplier;
    this.#imageTokens = options.imageTokens;
    this.#memo = options.memo;
    this.#prefix = `${this.encoding}|${this.#multiplier}|`;
  }

  /** Tokens of a plain string (no message framing). */
  text(text: string): number {
    return this.#scale(this.#tokenizer.count(text));
  }

  /** Tokens one message adds to a request, framing included. */
  message(message: ChatMessage): number {
    const known = this.#identity.get(message);
    if (known !== undefined) return known;
    const key = this.#prefix + messageKey(message);
    let count = this.#memo.get(key);
    if (count === undefined) {
      count = this.#scale(this.#messageRaw(message));
      this.#memo.set(key, count);
    }
    this.#identity.set(message, count);
    return count;
  }

  /**
   * Count the messages not counted yet, yielding to the event loop between slices of long texts
   * and every few milliseconds, so a multi-megabyte request does not stall every other request of
   * the server. Counts land in the memo: the synchronous `message()` then finds them. Exactly the
   * counts `message()` would give.
   */
  async prewarm(messages: Messages, signal?: AbortSignal): Promise<void> {
    const pause = timeSlicer();
    for (let index = 0; index < messages.length; index++) {
      const message = messages[index]!;
      if (this.#identity.has(message)) continue;
      if (typeof message.content !== 'string' || message.content.length <= COUNT_SLICE_CHARS) {
        this.message(message);
        // The clock is read every 16 messages: a short history never pays for it.
        const turn = index % 16 === 15 ? pause() : undefined;
        if (turn) {
          await turn;
          throwIfAborted(signal);
        }
        continue;
      }
      // A long text: keying it hashes all of it (a turn of its own), then it is counted in slices.
      await nextTurn();
      const key = this.#prefix + messageKey(message);
      let count = this.#memo.get(key);
      if (count === undefined) {
        let content = 0;
        let at = 0;
        for (const slice of slicesOf(message.content)) {
          await nextTurn();
          throwIfAborted(signal);
          content += this.#count(slice);
          // A slice that starts at one of the bounded count's own cuts: it adds one token per cut.
          if (at > 0 && !isNaturalCut(message.content, at)) content += 1;
          at += slice.length;
        }
        count = this.#scale(this.#messageRaw({ ...message, content: '' }) + content);
        this.#memo.set(key, count);
      }
      this.#identity.set(message, count);
    }
  }

  /** Tokens of a list of messages, without reply priming or tools. */
  messages(messages: Messages): number {
    let total = 0;
    for (const message of messages) total += this.message(message);
    return total;
  }

  /** Tokens the `tools` and legacy `functions` definitions add to a request. */
  tools(request: Pick<ChatRequest, 'tools' | 'functions'>): number {
    let total = 0;
    if (request.tools && request.tools.length > 0) total += this.#definitions(request.tools);
    if (request.functions && request.functions.length > 0) total += this.#definitions(request.functions);
    return total;
  }

  /** Everything a request's prompt is billed for: messages, reply priming and tools. */
  request(request: Pick<ChatRequest, 'messages' | 'tools' | 'functions'>): number {
    return this.messages(request.messages) + REPLY_PRIMING_TOKENS + this.tools(request);
  }

  #scale(count: number): number {
    return this.#multiplier === 1 ? count : Math.ceil(count * this.#multiplier);
  }

  #count(text: string): number {
    return this.#tokenizer.count(text);
  }

  #messageRaw(message: ChatMessage): number {
    let total = TOKENS_PER_MESSAGE;
    for (const key in message) {
      const value = message[key];
      if (value === undefined || value === null) continue;
      if (key === 'content') total += this.#content(value as ChatMessage['content']);
      else if (key === 'name') total += this.#count(value as string) + TOKENS_PER_NAME;
      else if (key === 'tool_calls') {
        for (const call of value as NonNullable<ChatMessage['tool_calls']>) {
          total += TOKENS_PER_TOOL_CALL + this.#count(call.function.name) + this.#count(call.function.arguments);
        }
      } else if (key === 'function_call') {
        const call = value as NonNullable<ChatMessage['function_call']>;
        total += TOKENS_PER_TOOL_CALL + this.#count(call.name) + this.#count(call.arguments ?? '');
      } else if (typeof value === 'string') total += this.#count(value);
      else total += this.#count(JSON.stringify(value));
    }
    return total;
  }

  #content(content: ChatMessage['content']): number {
    if (typeof content === 'string') return this.#count(content);
    if (!Array.isArray(content)) return 0;
    let total = 0;
    for (const part of content) {
      if (part.type === 'text' && typeof part.text === 'string') total += this.#count(part.text);
      else if (part.type === 'image_url') {
        const image = part.image_url as { url: string; detail?: string };
        total += imageTokens(image.url, image.detail, this.#imageTokens);
      } else total += this.#count(JSON.stringify(part));
    }
    return total;
  }

  #definitions(definitions: readonly (ToolDefinition | FunctionDefinition)[]): number {
    const cached = this.#toolsMemo.get(definitions);
    if (cached !== undefined) return cached;
    const count = this.#scale(this.#definitionsRaw(definitions));
    this.#toolsMemo.set(definitions, count);
    return count;
  }

  // The cookbook's num_tokens_for_tools: per function a fixed init, "name:description", per
  // property "name:type:description" and its enum items, and a fixed end. The init differs by
  // encoding (7 for o200k models, 10 for cl100k models). Parts of a schema the cookbook does not
  // cover (nested objects, arrays' items, non-function tools) are counted as their JSON: an estimate.
  #definitionsRaw(definitions: readonly (ToolDefinition | FunctionDefinition)[]): number {
    const functionInit = this.encoding === 'cl100k_base' ? 10 : 7;
    const propertyInit = 3;
    const propertyKey = 3;
    const enumInit = -3;
    const enumItem = 3;
    const functionEnd = 12;
    let total = 0;
    for (const definition of definitions) {
      const fn = ('function' in definition && typeof definition.function === 'object' ? definition.function : definition) as FunctionDefinition;
      if (typeof fn.name !== 'string') {
        total += this.#count(JSON.stringify(definition));
        continue;
      }
      total += functionInit;
      total += this.#count(`${fn.name}:${stripPeriod(typeof fn.description === 'string' ? fn.description : '')}`);
      const properties = (fn.parameters as { properties?: Record<string, Record<string, unknown>> } | undefined)?.properties;
      if (properties && typeof properties === 'object' && Object.keys(properties).length > 0) {
        total += propertyInit;
        for (const [name, schema] of Object.entries(properties)) {
          total += propertyKey;
          const property = (typeof schema === 'object' && schema !== null ? schema : {}) as Record<string, unknown>;
          if (Array.isArray(property.enum)) {
            total += enumInit;
            for (const item of property.enum) total += enumItem + this.#count(String(item));
          }
          const type = typeof property.type === 'string' ? property.type : JSON.stringify(property.type ?? '');
          const description = typeof property.description === 'string' ? stripPeriod(property.description) : '';
          total += this.#count(`${name}:${type}:${description}`);
          for (const [key, value] of Object.entries(property)) {
            if (key !== 'type' && key !== 'description' && key !== 'enum') total += this.#count(JSON.stringify(value));
          }
        }
      }
    }
    return total + functionEnd;
  }
}

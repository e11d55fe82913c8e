import { boundedCount } from './bounded.js';

/** A text tokenizer for one encoding. Only the count is needed on the hot path. */
export interface TextTokenizer {
  /** Name of the encoding, e.g. `o200k_base`; part of every token-count cache key. */
  readonly encoding: string;
  count(text: string): number;
}

export type EncodingName = 'o200k_base' | 'cl100k_base';

/** Builds the tokenizer for an encoding. Called at most once per encoding per compactor. */
export type TokenizerFactory = (encoding: EncodingName) => TextTokenizer | Promise<TextTokenizer>;

export type TokenizerBackend = 'js-tiktoken' | 'gpt-tokenizer';

// One lazily made encoder per (backend, encoding), shared by every compactor in the process:
// the rank tables are megabytes and take tens of milliseconds to load.
const loaded = new Map<string, Promise<TextTokenizer>>();

async function loadJsTiktoken(encoding: EncodingName): Promise<TextTokenizer> {
  const { Tiktoken } = await import('js-tiktoken/lite');
  const ranks = encoding === 'o200k_base' ? (await import('js-tiktoken/ranks/o200k_base')).default : (await import('js-tiktoken/ranks/cl100k_base')).default;
  const tiktoken = new Tiktoken(ranks);
  // Special-token text such as "<|endoftext|>" inside user content is billed as ordinary text,
  // so encode it as text instead of throwing (js-tiktoken's default).
  const count = (text: string): number => tiktoken.encode(text, [], []).length;
  return { encoding, count: (text) => (text.length === 0 ? 0 : boundedCount(count, text)) };
}

async function loadGptTokenizer(encoding: EncodingName): Promise<TextTokenizer> {
  const module = encoding === 'o200k_base' ? await import('gpt-tokenizer/encoding/o200k_base') : await import('gpt-tokenizer/encoding/cl100k_base');
  const options = { disallowedSpecial: new Set<string>() };
  const count = (text: string): number => module.countTokens(text, options);
  return { encoding, count: (text) => (text.length === 0 ? 0 : boundedCount(count, text)) };
}

/**
 * The built-in backends; they give identical counts, in time linear in the text (over-long runs of
 * one character class are counted in pieces: `./bounded.ts`). gpt-tokenizer is the default (see CompactorOptions.tokenizer). */
export function builtinTokenizer(backend: TokenizerBackend): TokenizerFactory {
  return (encoding) => {
    const key = `${backend}:${encoding}`;
    let promise = loaded.get(key);
    if (promise === undefined) {
      promise = backend === 'js-tiktoken' ? loadJsTiktoken(encoding) : loadGptTokenizer(encoding);
      promise.catch(() => loaded.delete(key));
      loaded.set(key, promise);
    }
    return promise;
  };
}

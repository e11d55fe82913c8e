import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import { EXPRESS_DEFAULTS } from '../src/adapters/express.js';
import { FETCH_DEFAULTS } from '../src/adapters/fetch.js';
import { RESPONSE_CACHE_DEFAULTS } from '../src/cache/response-cache.js';
import { COMPACTOR_DEFAULTS } from '../src/core/options.js';
import { DEFAULT_LIMITS } from '../src/core/validate.js';
import { EMBEDDING_CACHE_DEFAULTS } from '../src/embedders/memo.js';
import { OPENAI_EMBEDDER_DEFAULTS } from '../src/embedders/openai.js';
import { USE_LITE_DEFAULTS } from '../src/embedders/use-lite.js';
import { JSON_CLIENT_DEFAULTS } from '../src/http/json-client.js';
import { PROXY_DEFAULTS } from '../src/proxy/server.js';
import { MEMORY_STORE_DEFAULTS } from '../src/stores/memory.js';
import { REDIS_STORE_DEFAULTS } from '../src/stores/redis.js';
import { EXTRACTIVE_DEFAULTS } from '../src/summarizers/extractive.js';
import { LLM_SUMMARIZER_DEFAULTS } from '../src/summarizers/llm.js';
import { SUMMARY_QUEUE_DEFAULTS } from '../src/summarizers/queue.js';
import { CACHE_AWARE_DEFAULTS } from '../strategies/cache-aware/index.js';
import { RELEVANCE_DEFAULTS } from '../strategies/relevance/index.js';
import { SUMMARIZE_DEFAULTS } from '../strategies/summarize/index.js';
import { TRUNCATE_DEFAULTS } from '../strategies/truncate/index.js';

/** The `@default` of every property of the named interfaces (and the ones they extend, when listed). */
function documentedDefaults(interfaces: [file: string, name: string][]): Map<string, string | undefined> {
  const found = new Map<string, string | undefined>();
  for (const [file, name] of interfaces) {
    const source = ts.createSourceFile(file, readFileSync(new URL(`../${file}`, import.meta.url), 'utf8'), ts.ScriptTarget.Latest, true);
    let declaration: ts.InterfaceDeclaration | undefined;
    source.forEachChild((node) => {
      if (ts.isInterfaceDeclaration(node) && node.name.text === name) declaration = node;
    });
    if (!declaration) throw new Error(`no interface ${name} in ${file}`);
    for (const member of declaration.members) {
      if (!ts.isPropertySignature(member) || !member.name || !ts.isIdentifier(member.name)) continue;
      const tag = ts.getJSDocTags(member).find((candidate) => candidate.tagName.text === 'default');
      // The first interface listed wins: an option redeclared with its own default overrides the base's.
      if (!found.has(member.name.text)) found.set(member.name.text, tag ? (ts.getTextOfJSDocComment(tag.comment) ?? '').trim() : undefined);
    }
  }
  return found;
}

/** The value a `@default` text states, when it states a literal: `4096`, `33554432 (32 MiB)`, `'auto'`, `false`, a RegExp. */
function literalOf(text: string): { value: unknown } | undefined {
  const match = /^('([^']*)'|"([^"]*)"|(-?\d[\d_]*(\.\d+)?)|true|false|null|(\/.+\/[a-z]*))(\s|$)/.exec(text);
  if (!match) return undefined;
  if (match[2] !== undefined || match[3] !== undefined) return { value: match[2] ?? match[3] };
  if (match[4] !== undefined) return { value: Number(match[4].replaceAll('_', '')) };
  if (match[6] !== undefined) return { value: match[6] };
  return { value: JSON.parse(match[1]!) };
}

const cases: [string, [string, string][], Record<string, unknown>][] = [
  ['createCompactor', [['src/core/options.ts', 'CompactorOptions']], COMPACTOR_DEFAULTS],
  ['limits', [['src/core/validate.ts', 'InputLimits']], { ...DEFAULT_LIMITS }],
  ['truncate', [['strategies/truncate/index.ts', 'TruncateOptions']], TRUNCATE_DEFAULTS],
  [
    'relevance',
    [
      ['strategies/relevance/index.ts', 'RelevanceOptions'],
      ['strategies/relevance/score.ts', 'ScoringOptions'],
    ],
    RELEVANCE_DEFAULTS,
  ],
  [
    'cacheAware',
    [
      ['strategies/cache-aware/index.ts', 'CacheAwareOptions'],
      ['strategies/relevance/score.ts', 'ScoringOptions'],
    ],
    CACHE_AWARE_DEFAULTS,
  ],
  ['summarize', [['strategies/summarize/index.ts', 'SummarizeStrategyOptions']], SUMMARIZE_DEFAULTS],
  ['createResponseCache', [['src/cache/response-cache.ts', 'ResponseCacheOptions']], RESPONSE_CACHE_DEFAULTS],
  ['memoryStore', [['src/stores/memory.ts', 'MemoryStoreOptions']], MEMORY_STORE_DEFAULTS],
  ['redisStore', [['src/stores/redis.ts', 'RedisStoreOptions']], REDIS_STORE_DEFAULTS],
  ['SummaryQueue', [['src/summarizers/queue.ts', 'SummaryQueueOptions']], SUMMARY_QUEUE_DEFAULTS],
  ['createEmbeddingCache', [['src/embedders/memo.ts', 'EmbeddingCacheOptions']], EMBEDDING_CACHE_DEFAULTS],
  ['useLite', [['src/embedders/use-lite.ts', 'UseLiteOptions']], USE_LITE_DEFAULTS],
  [
    'openaiEmbedder',
    [
      ['src/embedders/openai.ts', 'OpenAIEmbedderOptions'],
      ['src/http/json-client.ts', 'JsonClientOptions'],
    ],
    { ...JSON_CLIENT_DEFAULTS, ...OPENAI_EMBEDDER_DEFAULTS },
  ],
  [
    'llmSummarizer',
    [
      ['src/summarizers/llm.ts', 'LlmSummarizerOptions'],
      ['src/http/json-client.ts', 'JsonClientOptions'],
    ],
    { ...JSON_CLIENT_DEFAULTS, ...LLM_SUMMARIZER_DEFAULTS },
  ],
  ['extractiveSummarizer', [['src/summarizers/extractive.ts', 'ExtractiveOptions']], EXTRACTIVE_DEFAULTS],
  ['createProxy', [['src/proxy/server.ts', 'ProxyOptions']], PROXY_DEFAULTS],
  [
    'express compaction',
    [
      ['src/adapters/express.ts', 'ExpressCompactionOptions'],
      ['src/adapters/exchange.ts', 'AdapterOptions'],
    ],
    EXPRESS_DEFAULTS,
  ],
  [
    'fetch compaction',
    [
      ['src/adapters/fetch.ts', 'FetchCompactionOptions'],
      ['src/adapters/exchange.ts', 'AdapterOptions'],
    ],
    FETCH_DEFAULTS,
  ],
];

describe('every @default states the real default', () => {
  test.each(cases)('%s', (_name, interfaces, defaults) => {
    const documented = documentedDefaults(interfaces);
    for (const [option, value] of Object.entries(defaults)) {
      expect(documented.has(option), `${option} is not an option of ${interfaces[0]![1]}`).toBe(true);
      const text = documented.get(option);
      expect(text, `${option} has no @default`).toBeTruthy();
      if (typeof value === 'object' && value !== null && !(value instanceof RegExp)) continue;
      const stated = literalOf(text!);
      expect(stated, `${option}: @default ${text} is not a literal`).toBeDefined();
      expect(stated!.value, `${option}: @default ${text}`).toEqual(value instanceof RegExp ? String(value) : value);
    }
  });

  test('booleans default to false', () => {
    for (const [, , defaults] of cases)
      for (const [option, value] of Object.entries(defaults)) if (typeof value === 'boolean') expect(value, option).toBe(false);
  });

  test('the check reads what it claims', () => {
    expect(literalOf("'relevance'")).toEqual({ value: 'relevance' });
    expect(literalOf('33554432 (32 MiB)')).toEqual({ value: 33554432 });
    expect(literalOf('false')).toEqual({ value: false });
    expect(literalOf("the runtime's default encoder")).toBeUndefined();
    expect(documentedDefaults([['src/core/options.ts', 'CompactorOptions']]).get('strategy')).toBe("'cache-aware'");
  });
});

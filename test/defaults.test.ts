import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import { compaction as aiSdkCompaction } from '../src/adapters/ai-sdk.js';
import { compaction as expressCompaction } from '../src/adapters/express.js';
import { compaction as fetchCompaction } from '../src/adapters/fetch.js';
import { OPTION_REGISTRY } from '../src/core/define-options.js';
import { createPreset } from '../strategies/presets.js';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import {
  cacheAware,
  createCompactor,
  createResponseCache,
  createRuntime,
  extractiveSummarizer,
  llmSummarizer,
  memoryStore,
  openaiEmbedder,
  redisStore,
  relevance,
  summarize,
  toolResults,
  transformersEmbedder,
  truncate,
  useLite,
} from '../src/index.js';
import { createProxy } from '../src/proxy/server.js';
import { SummaryQueue } from '../src/summarizers/queue.js';

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

/**
 * How to call each registered factory with some options. A factory registered (by defineOptions)
 * but missing here fails the test below: every factory's checks are run for real.
 */
const FACTORIES: Record<string, (options: Record<string, unknown>) => unknown> = {
  createCompactor: (options) => createCompactor(options),
  limits: (options) => createCompactor({ limits: options }),
  presetOptions: (options) => createPreset('truncate', options),
  truncate: (options) => truncate(options),
  toolResults: (options) => toolResults(options),
  relevance: (options) => relevance(options),
  cacheAware: (options) => cacheAware(options),
  summarize: (options) => summarize(options),
  createResponseCache: (options) => createResponseCache(options),
  memoryStore: (options) => memoryStore(options),
  redisStore: (options) => redisStore(options),
  createRuntime: (options) => createRuntime(options),
  SummaryQueue: (options) => new SummaryQueue(options),
  createEmbeddingCache: (options) => createEmbeddingCache(options),
  useLite: (options) => useLite(options),
  openaiEmbedder: (options) => openaiEmbedder(options),
  transformersEmbedder: (options) => transformersEmbedder(options),
  llmSummarizer: (options) => llmSummarizer(options),
  extractiveSummarizer: (options) => extractiveSummarizer(options),
  createProxy: (options) => createProxy({ allowUnauthenticated: true, ...options }),
  'express compaction': (options) => expressCompaction({}, options),
  'fetch compaction': (options) => fetchCompaction({}, options),
  'ai-sdk compaction': (options) => aiSdkCompaction({}, options),
};

const cases = [...OPTION_REGISTRY.values()].map(
  (definition) => [definition.factory, definition.docs as [string, string][], definition.defaults as Record<string, unknown>] as const,
);

describe('every factory and adapter validates its options with the one helper', () => {
  test('the registry holds every public factory, and each is called here', () => {
    expect([...OPTION_REGISTRY.keys()].sort()).toEqual(Object.keys(FACTORIES).sort());
  });

  test.each([...OPTION_REGISTRY.values()].map((definition) => [definition.factory, definition] as const))(
    '%s: an unknown key is an error with a "did you mean", and so is each option’s invalid value',
    (factory, definition) => {
      const call = FACTORIES[factory]!;
      const first = definition.names[0]!;
      // One letter off the first option (as "tennant" for "tenant").
      const typo = `${first.slice(0, -1)}${first.at(-1) === 'x' ? 'y' : 'x'}`;
      let caught: unknown;
      try {
        call({ [typo]: 1 });
      } catch (error) {
        caught = error;
      }
      expect(caught, `${factory} accepted "${typo}"`).toMatchObject({ code: 'options.invalid' });
      expect((caught as Error).message).toContain(`did you mean`);
      expect((caught as Error).message).toContain(first);
      for (const [name, rule] of Object.entries(definition.rules)) {
        if (rule.invalid === undefined) continue;
        expect(() => definition.parse({ [name]: rule.invalid } as object), `${factory}.${name} accepted ${String(rule.invalid)}`).toThrow(
          expect.objectContaining({ code: 'options.invalid' }),
        );
      }
    },
  );

  test('the findings of the report: each typo is refused by name', () => {
    expect(() => truncate({ keepFirstUserTurn: 1 } as never)).toThrow(/keepFirstUserTurns/);
    expect(() => relevance({ recencyshare: 0.2 } as never)).toThrow(/recencyShare/);
    expect(() => memoryStore({ maxEntrys: 5 } as never)).toThrow(/maxBytes|unknown option "maxEntrys"/);
    expect(() => createRuntime({ stor: memoryStore() } as never)).toThrow(/did you mean "store"/);
    expect(() => createCompactor({ presetOptions: { relevanse: {} } as never })).toThrow(/did you mean "presetOptions.relevance"/);
    expect(() => expressCompaction({}, { tennant: () => 'a' } as never)).toThrow(/did you mean "tenant"/);
    expect(() => fetchCompaction({}, { tennant: () => 'a' } as never)).toThrow(/did you mean "tenant"/);
    // A presetOptions key is the preset's name as users write it.
    expect(() => createCompactor({ presetOptions: { cacheAware: {} } as never })).toThrow(/did you mean "presetOptions.cache-aware"/);
    expect(() => createCompactor({ presetOptions: { 'cache-aware': { lowWater: 2 } } })).toThrow(expect.objectContaining({ pointer: 'lowWater' }));
  });
});

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
    expect(documentedDefaults([['src/compose/options.ts', 'CompactorOptions']]).get('strategy')).toBe("'cache-aware'");
  });
});

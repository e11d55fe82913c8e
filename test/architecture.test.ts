import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(folder: string, withTests = false): string[] {
  return readdirSync(join(root, folder)).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(join(root, path)).isDirectory()) return sources(path, withTests);
    return path.endsWith('.ts') && (withTests || !path.endsWith('.test.ts')) && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every module a file imports (static, type-only, re-exports and dynamic `import('…')` of a literal), resolved to repository paths. */
function importsOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier))
      specifiers.push(node.moduleSpecifier.text);
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0]))
      specifiers.push(node.arguments[0].text);
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal))
      specifiers.push(node.argument.literal.text);
    node.forEachChild(visit);
  };
  visit(source);
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => relative(root, resolve(root, dirname(file), specifier.replace(/\.js$/, '.ts'))));
}

const library = [...sources('src'), ...sources('strategies')];
const graph = new Map(library.map((file) => [file, importsOf(file)]));

/** Every import circle reachable in `imports` (each as the files around it, first repeated at the end). */
function findCycles(imports: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[][] = [];
  const walk = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file]);
      return;
    }
    state.set(file, 'open');
    for (const target of imports.get(file) ?? []) walk(target, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of imports.keys()) walk(file, []);
  return cycles;
}

/** The kernel of the core, which the floors below it (tokens, text) may import. */
const KERNEL = /^src\/core\/(types|errors|turns)\.ts$/;
/** What src/core may import besides itself: the floors below it. */
const BELOW_CORE = /^src\/(core\/|text\/|tokens\/|prices\.ts$|embedders\/types\.ts$)/;
/** Upward imports not yet removed, each to be taken out of this list when it goes (none left). */
const KNOWN_UPWARD: string[] = [];

/** Every import from src/core to a module above it, as "from -> to", sorted. */
function upwardImports(imports: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  for (const [file, targets] of imports) {
    if (!file.startsWith('src/core/')) continue;
    for (const target of targets) if (!BELOW_CORE.test(target)) found.push(`${file} -> ${target}`);
  }
  return found.sort();
}

describe('architecture', () => {
  test('every relative import resolves to a file', () => {
    for (const [file, imports] of graph) for (const target of imports) expect(existsSync(join(root, target)), `${file} -> ${target}`).toBe(true);
  });

  test('no import circle in src/ and strategies/ (type-only imports included)', () => {
    expect(findCycles(graph).map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  test('the circle check finds a planted circle', () => {
    // The circle issue 15 removed, as it was: response cache -> relevance -> strategy -> response cache.
    const planted = new Map(graph);
    planted.set('src/cache/response-cache.ts', [...(graph.get('src/cache/response-cache.ts') ?? []), 'strategies/relevance/index.ts']);
    planted.set('strategies/relevance/index.ts', [...(graph.get('strategies/relevance/index.ts') ?? []), 'src/core/strategy.ts']);
    planted.set('src/core/strategy.ts', [...(graph.get('src/core/strategy.ts') ?? []), 'src/cache/response-cache.ts']);
    expect(findCycles(planted).length).toBeGreaterThan(0);
  });

  test('the core imports nothing above it: only itself, text, tokens, the price table and embedder types', () => {
    expect(upwardImports(graph)).toEqual(KNOWN_UPWARD);
  });

  test('the layering check catches a planted violation', () => {
    const planted = new Map(graph);
    planted.set('src/core/guard.ts', [...(graph.get('src/core/guard.ts') ?? []), 'strategies/presets.ts']);
    expect(upwardImports(planted)).toEqual([...KNOWN_UPWARD, 'src/core/guard.ts -> strategies/presets.ts'].sort());
  });

  test('tokens/ and text/ import only the kernel of the core (types, errors, turns)', () => {
    for (const [file, imports] of graph) {
      if (!/^src\/(tokens|text)\//.test(file)) continue;
      for (const target of imports.filter((path) => path.startsWith('src/core/'))) expect(target, file).toMatch(KERNEL);
    }
  });

  test('no module under src/ or strategies/ imports from bench/ or test/', () => {
    for (const [file, imports] of graph) for (const target of imports) expect(target, file).not.toMatch(/^(bench|test)\//);
  });

  test("the core imports nothing from adapters, the proxy, the CLI or Node's HTTP stack", () => {
    for (const file of library.filter((path) => path.startsWith('src/core/'))) {
      for (const target of graph.get(file)!) expect(target, file).not.toMatch(/^src\/(adapters|proxy|cli)\//);
      expect(readFileSync(join(root, file), 'utf8'), file).not.toMatch(/from '(node:http|express|undici)'/);
    }
  });

  test("the library's tests import no bench code: only the shipped data's readers (bench/datasets/, bench/paths.ts)", () => {
    const reaching = sources('test', true)
      .flatMap((file) => importsOf(file).map((target) => `${file} -> ${target}`))
      .filter((edge) => / -> bench\//.test(edge) && !/ -> bench\/(datasets\/|paths\.ts$)/.test(edge));
    expect(reaching).toEqual([]);
  });

  test('no file under src/ or strategies/ is over 300 lines, but generated data (the verifier weights)', () => {
    const generated = new Set(['src/cache/verifier-weights.ts']);
    const long = library
      .filter((file) => !generated.has(file))
      .map((file) => ({ file, lines: readFileSync(join(root, file), 'utf8').split('\n').length }))
      .filter(({ lines }) => lines > 300);
    expect(long).toEqual([]);
  });

  test('the root entry exports at most 27 names, values and types together (26 before summaryFold)', () => {
    const source = ts.createSourceFile('index.ts', readFileSync(join(root, 'src/index.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
    const names: string[] = [];
    source.forEachChild((node) => {
      if (ts.isExportDeclaration(node) && node.exportClause && ts.isNamedExports(node.exportClause))
        names.push(...node.exportClause.elements.map((element) => element.name.text));
      else if (ts.isExportDeclaration(node)) names.push('*');
    });
    expect(names).not.toContain('*');
    expect(names.length).toBeLessThanOrEqual(27);
    expect(new Set(names).size).toBe(names.length);
  });

  test('package.json lists each documented subpath', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(manifest.exports).sort()).toEqual(['.', './ai-sdk', './express', './fetch', './package.json', './proxy', './testing']);
  });
});

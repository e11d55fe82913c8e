import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(folder: string): string[] {
  return readdirSync(join(root, folder)).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(join(root, path)).isDirectory()) return sources(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts') ? [path] : [];
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

describe('architecture', () => {
  test('every relative import resolves to a file', () => {
    for (const [file, imports] of graph) for (const target of imports) expect(existsSync(join(root, target)), `${file} -> ${target}`).toBe(true);
  });

  test('no import circle in src/ and strategies/ (type-only imports included)', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[][] = [];
    const walk = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file]);
        return;
      }
      state.set(file, 'open');
      for (const target of graph.get(file) ?? []) walk(target, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) walk(file, []);
    expect(cycles.map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  test('the check finds a circle when there is one', () => {
    // The circle this issue removed, as it was: response cache -> relevance -> strategy -> response cache.
    const old = new Map([
      ['src/cache/response-cache.ts', ['strategies/relevance/index.ts']],
      ['strategies/relevance/index.ts', ['src/strategy.ts']],
      ['src/strategy.ts', ['src/cache/response-cache.ts']],
    ]);
    const seen = new Set<string>();
    let file = 'src/cache/response-cache.ts';
    while (!seen.has(file)) {
      seen.add(file);
      file = old.get(file)![0]!;
    }
    expect(file).toBe('src/cache/response-cache.ts');
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

  test('the root entry exports at most 26 names, values and types together', () => {
    const source = ts.createSourceFile('index.ts', readFileSync(join(root, 'src/index.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
    const names: string[] = [];
    source.forEachChild((node) => {
      if (ts.isExportDeclaration(node) && node.exportClause && ts.isNamedExports(node.exportClause))
        names.push(...node.exportClause.elements.map((element) => element.name.text));
      else if (ts.isExportDeclaration(node)) names.push('*');
    });
    expect(names).not.toContain('*');
    expect(names.length).toBeLessThanOrEqual(26);
    expect(new Set(names).size).toBe(names.length);
  });

  test('package.json lists each documented subpath', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(manifest.exports).sort()).toEqual(['.', './ai-sdk', './express', './fetch', './package.json', './proxy', './testing']);
  });
});

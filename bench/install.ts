/**
 * What installing the package costs a user: `npm pack`, then `npm install` of the tarball into an
 * empty project (no overrides, no .npmrc of ours), with defaults and with `--omit=optional`. Prints
 * the installed node_modules size, the install time, and the cold import time of the root entry and
 * of each subpath, against a bare `node` start in the same run.
 *
 * Run from a built clone: `npm run bench:install` (add `--md` for a Markdown table).
 */
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { folderBytes, installTarball, packTarball } from './harness/packed.js';
import { repositoryRoot } from './paths.js';
import { machine, markdownTable, percentile, table } from './harness/stats.js';
import { runStudy, studyFlags } from './harness/study.js';

const RUNS = Number(process.env.IMPORT_RUNS ?? 15);
const ENTRIES = [
  'context-compactor',
  'context-compactor/express',
  'context-compactor/fetch',
  'context-compactor/ai-sdk',
  'context-compactor/proxy',
  'context-compactor/testing',
];

/** Milliseconds of `node file` runs (process start to exit), the median and p90 of RUNS. */
function timed(folder: string, name: string, code: string): { p50: number; p90: number } {
  const file = join(folder, name);
  writeFileSync(file, code);
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const result = spawnSync(process.execPath, [file], { cwd: folder, stdio: 'ignore' });
    if (result.status !== 0) throw new Error(`${name} exited ${result.status}`);
    samples.push(performance.now() - started);
  }
  return { p50: percentile(samples, 50), p90: percentile(samples, 90) };
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

function main(): void {
  process.stderr.write('packing…\n');
  const tarball = packTarball(repositoryRoot());
  const rows: string[][] = [];
  const imports: string[][] = [];
  for (const [name, omitOptional] of [
    ['defaults', false],
    ['--omit=optional', true],
  ] as const) {
    process.stderr.write(`installing with ${name}…\n`);
    const project = installTarball(tarball, { omitOptional });
    const bytes = folderBytes(join(project.folder, 'node_modules'));
    rows.push([name, mb(bytes), (project.ms / 1000).toFixed(1)]);
    process.stderr.write(`timing imports (${RUNS} runs each)…\n`);
    const bare = timed(project.folder, 'bare.mjs', '');
    imports.push([name, 'node (nothing imported)', bare.p50.toFixed(0), bare.p90.toFixed(0), '–']);
    for (const entry of ENTRIES) {
      const time = timed(project.folder, `import-${entry.replaceAll('/', '-')}.mjs`, `await import('${entry}');\n`);
      imports.push([name, entry, time.p50.toFixed(0), time.p90.toFixed(0), `+${(time.p50 - bare.p50).toFixed(0)}`]);
    }
  }
  const markdown = studyFlags('bench:install', {}).md;
  const render = markdown ? markdownTable : table;
  process.stdout.write(`${machine()}\ntarball: ${(statSync(tarball).size / 1024).toFixed(0)} KiB\n\n`);
  process.stdout.write(`${render([['install', 'node_modules MB', 'npm install s'], ...rows])}\n\n`);
  process.stdout.write(
    `Cold import: a fresh node process that imports the entry and exits, ms (p50 and p90 of ${RUNS}); the last column is the p50 over a bare node start in the same project.\n\n`,
  );
  process.stdout.write(`${render([['install', 'entry', 'p50 ms', 'p90 ms', 'over bare node'], ...imports])}\n`);
}

runStudy('bench:install', async () => main());

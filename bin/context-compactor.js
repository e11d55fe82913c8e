#!/usr/bin/env node
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('context-compactor: not built yet: run `npm run build` (npm ci runs it for you)\n');
  process.exit(1);
}
const { main } = await import(entry.href);
// The bench commands (bench, demo, cache-eval) live in the repository's bench/, which the npm
// package does not ship; from a clone they are built to dist/bench.
const bench = new URL('../dist/bench/cli.js', import.meta.url);
const code = await main(process.argv, { bench: () => import(bench.href) });
if (process.argv[2] === 'serve') process.exitCode = code;
else {
  // One-shot work is done once its output is written: a model still loading in the background
  // (the encoder's files are being read on a cold start) must not keep the process for seconds.
  await new Promise((resolve) => process.stdout.write('', resolve));
  process.exit(code);
}

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's bench/ folder, from bench/ under vitest or from dist/bench once built. The bench
 * and its data ship with the repository, not with the npm package.
 */
export function benchRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(folder, 'bench', 'data')) && existsSync(join(folder, 'package.json'))) return join(folder, 'bench');
    const parent = dirname(folder);
    if (parent === folder) throw new Error("cannot find the repository's bench/data folder: the bench runs from a clone of the repository");
    folder = parent;
  }
}

/** The repository root (for caches under .cache/). */
export function repositoryRoot(): string {
  return dirname(benchRoot());
}

export function shippedLocomoPath(): string {
  return join(benchRoot(), 'data', 'locomo', 'locomo-dev.json');
}

import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The package as users get it: `npm pack` of the repository, installed into an empty project with
 * no overrides and no .npmrc of ours. Used by the packaging test and the install bench.
 */

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Packs the repository (already built) into a tarball; returns its path. */
export function packTarball(repository: string): string {
  const folder = mkdtempSync(join(tmpdir(), 'cc-pack-'));
  const output = execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', folder], { cwd: repository, encoding: 'utf8' });
  return join(folder, output.trim().split('\n').at(-1)!);
}

export interface InstalledProject {
  folder: string;
  /** Milliseconds `npm install` took. */
  ms: number;
}

/** An empty project with the tarball installed (`omitOptional`: `npm install --omit=optional`). */
export function installTarball(tarball: string, options: { omitOptional?: boolean; folder?: string } = {}): InstalledProject {
  const folder = options.folder ?? mkdtempSync(join(tmpdir(), options.omitOptional ? 'cc-lean-' : 'cc-default-'));
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'package.json'), `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  const started = performance.now();
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', ...(options.omitOptional ? ['--omit=optional'] : []), tarball], {
    cwd: folder,
    stdio: 'pipe',
  });
  return { folder, ms: performance.now() - started };
}

/** Bytes of files under a folder (not following links), as `du` counts apparent sizes. */
export function folderBytes(folder: string): number {
  let total = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) total += folderBytes(path);
    else if (entry.isFile()) total += lstatSync(path).size;
  }
  return total;
}

/** Whether a package is installed in a project's node_modules. */
export function hasPackage(folder: string, name: string): boolean {
  try {
    return lstatSync(join(folder, 'node_modules', name, 'package.json')).isFile();
  } catch {
    return false;
  }
}

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CompactorError } from './errors.js';

const require = createRequire(import.meta.url);
const installed = new Map<string, boolean>();

/**
 * Whether an optional package is installed where this package can load it. Looks for its folder
 * along Node's lookup paths, so a package whose `exports` hide `package.json` is still found.
 */
export function isInstalled(name: string): boolean {
  let found = installed.get(name);
  if (found === undefined) {
    found = (require.resolve.paths(name) ?? []).some((folder) => existsSync(join(folder, name, 'package.json')));
    installed.set(name, found);
  }
  return found;
}

/** The error for a missing optional package, naming it and what needs it. */
export function missingDependency(name: string, feature: string, cause?: unknown): CompactorError {
  return new CompactorError('dependency.missing', `${feature} needs the optional package "${name}": npm install ${name}`, {
    details: { package: name },
    cause,
  });
}

/** Throws `dependency.missing` unless `name` is installed (checked once, at construction). */
export function requireInstalled(name: string, feature: string): void {
  if (!isInstalled(name)) throw missingDependency(name, feature);
}

/** Import an optional package; a missing one becomes `dependency.missing`. */
export async function importOptional<T>(name: string, feature: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw missingDependency(name, feature, error);
    throw error;
  }
}

const warned = new Set<string>();

/** One process warning per key: a degraded mode says so once, not on every request. */
export function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  process.emitWarning(message, { code: 'CONTEXT_COMPACTOR_DEGRADED' });
}

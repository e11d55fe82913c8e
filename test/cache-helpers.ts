import { fileURLToPath } from 'node:url';

/** A file under bench/data, shipped with the project. */
export function shippedDataPath(relative: string): string {
  return fileURLToPath(new URL(`../bench/data/${relative}`, import.meta.url));
}

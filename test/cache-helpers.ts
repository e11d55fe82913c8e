import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A file under bench/data, shipped with the project. */
export function shippedDataPath(relative: string): string {
  return fileURLToPath(new URL(`../bench/data/${relative}`, import.meta.url));
}

/** The first `count` questions (`a` fields) of a shipped pairs file, read as data, without the bench's loaders. */
export function shippedQuestions(relative: string, count: number): string[] {
  return readFileSync(shippedDataPath(relative), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(0, count)
    .map((line) => String((JSON.parse(line) as { a: unknown }).a));
}

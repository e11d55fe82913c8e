import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CompactorError } from '../../src/core/errors.js';

export type PairLabel = 'hit' | 'hard_miss' | 'miss';

/** A labelled question pair for cache evaluation: `b` should hit `a` only when `label` is `hit`. */
export interface LabelledPair {
  a: string;
  b: string;
  label: PairLabel;
}

const LABELS = new Set<string>(['hit', 'hard_miss', 'miss']);

/** Reads `{a, b, label}` JSON lines; bad lines are errors naming the line. */
export function readPairs(file: string): LabelledPair[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CompactorError('input.invalid', `${file}: ${(error as Error).message}`, { pointer: 'pairs', cause: error });
  }
  const pairs: LabelledPair[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let parsed: { a?: unknown; b?: unknown; label?: unknown };
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new CompactorError('input.invalid', `${file}:${index + 1}: not valid JSON`, { pointer: `pairs[${index}]` });
    }
    if (typeof parsed.a !== 'string' || typeof parsed.b !== 'string' || typeof parsed.label !== 'string' || !LABELS.has(parsed.label)) {
      throw new CompactorError('input.invalid', `${file}:${index + 1}: needs string "a" and "b" and a label of hit, hard_miss or miss`, {
        pointer: `pairs[${index}]`,
      });
    }
    pairs.push({ a: parsed.a, b: parsed.b, label: parsed.label as PairLabel });
  });
  return pairs;
}

/**
 * Split pairs so that no question is on both sides: questions linked by any pair form one
 * component, and a component goes wholly to `train` or `test` by a hash of its first question.
 */
export function splitByQuestion(pairs: readonly LabelledPair[], testShare = 0.3, salt = ''): { train: LabelledPair[]; test: LabelledPair[] } {
  const roots = questionComponents(pairs);
  const train: LabelledPair[] = [];
  const test: LabelledPair[] = [];
  pairs.forEach((pair, index) => {
    const digest = createHash('sha1')
      .update(salt + roots[index]!)
      .digest();
    (digest.readUInt32BE(0) / 2 ** 32 < testShare ? test : train).push(pair);
  });
  return { train, test };
}

/** For each pair, a name of its component: pairs sharing a question (transitively) share it. */
export function questionComponents(pairs: readonly LabelledPair[]): string[] {
  const parent = new Map<string, string>();
  const find = (text: string): string => {
    let root = text;
    while (parent.get(root) !== root) {
      if (!parent.has(root)) parent.set(root, root);
      else root = parent.get(root)!;
    }
    let node = text;
    while (parent.get(node) !== root) {
      const next = parent.get(node)!;
      parent.set(node, root);
      node = next;
    }
    return root;
  };
  for (const pair of pairs) {
    const a = find(pair.a);
    const b = find(pair.b);
    // Strings: the later one points at the earlier one, so every group's root is its least member.
    if (a < b) parent.set(b, a);
    else if (b < a) parent.set(a, b);
  }
  return pairs.map((pair) => find(pair.a));
}

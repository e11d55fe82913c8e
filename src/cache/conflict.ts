import { reversed, type TextProfile } from './profile.js';

/**
 * Questions that no score should let answer each other: one negated and the other not, other
 * numbers, other names, or the same things related the other way round ("raw eggs safe" / "raw
 * eggs not safe"; "in 2020" / "in 2021"; "founded Apple" / "founded Microsoft"; "miles to km" /
 * "km to miles").
 */
export function conflict(a: TextProfile, b: TextProfile): boolean {
  if (a.negations > 0 !== b.negations > 0) return true;
  if (!sameSet(a.numbers, b.numbers)) return true;
  if (reversed(a, b)) return true;
  // A name one question mentions and the other does not, in any case ("Quora" and "quora" agree).
  return namedOnlyIn(a, b) || namedOnlyIn(b, a);
}

function namedOnlyIn(a: TextProfile, b: TextProfile): boolean {
  if (a.names.size === 0) return false;
  const words = new Set(b.words);
  for (const name of a.names) if (!b.names.has(name) && !words.has(name)) return true;
  return false;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const item of a) if (!b.has(item)) return false;
  return true;
}

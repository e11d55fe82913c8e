import { LRUCache } from 'lru-cache';
import { STOPWORDS } from '../text/stopwords.js';
import { NEGATIONS, QUALIFIERS, QUESTION_WORDS } from './words.js';

/** What the verifier and the conflict guard read of one text, computed once per text. */
export interface TextProfile {
  words: string[];
  content: Set<string>;
  bigrams: Set<string>;
  trigrams: Set<string>;
  numbers: Set<string>;
  names: Set<string>;
  negations: number;
  questionWord: string | undefined;
  /** Position of each (stemmed) content word's first occurrence. */
  order: Map<string, number>;
  qualifiers: Set<string>;
  /**
   * Each directional word ("to", "from", "than", "into", "vs"…) with the nearest content words on
   * either side: "convert miles to km" is `to: [convert, mile] | [km]`. Two questions that put the
   * same two words on opposite sides of the same word ask opposite things (see `reversed`).
   */
  relations: Relation[];
  /** Each number with the content word right after it (its unit): "10 miles" is `10 → mile`. */
  quantities: Map<string, string>;
}

export interface Relation {
  marker: string;
  left: string[];
  right: string[];
}

/** Words that give the entities around them a direction or an order. */
const DIRECTIONAL = new Set(['to', 'into', 'onto', 'from', 'than', 'vs', 'versus', 'over', 'before', 'after', 'toward', 'towards']);
/** Content words on each side of a directional word that it relates. */
const RELATION_WINDOW = 3;

/**
 * True when the two texts relate the same two words in opposite directions: one word before a
 * directional word in one text and after it in the other, and another word the other way round
 * ("miles to km" / "km to miles", "Paris to Tokyo" / "Tokyo to Paris", "Celsius higher than
 * Fahrenheit" / "Fahrenheit higher than Celsius"). A reworded question that keeps each side
 * ("to Tokyo from Paris") does not.
 */
export function reversed(a: TextProfile, b: TextProfile): boolean {
  // "10 miles in km" / "10 km in miles": the same number, each text's unit in the other.
  for (const [number, unit] of a.quantities) {
    const other = b.quantities.get(number);
    if (other !== undefined && other !== unit && a.content.has(other) && b.content.has(unit)) return true;
  }
  for (const one of a.relations) {
    for (const other of b.relations) {
      if (one.marker !== other.marker) continue;
      const crossedLeft = one.left.some((word) => other.right.includes(word) && !other.left.includes(word));
      const crossedRight = one.right.some((word) => other.left.includes(word) && !other.right.includes(word));
      if (crossedLeft && crossedRight) return true;
    }
  }
  return false;
}

function stem(word: string): string {
  // Light stemming, enough that "cars"/"car" and "running"/"run" meet; never shorter than 3.
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.length > 5 && word.endsWith('ing')) return word.slice(0, -3);
  if (word.length > 4 && word.endsWith('ed')) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss')) return word.slice(0, -1);
  return word;
}

/** Per-text work, done once per cached question and once per query. */
export function profile(text: string): TextProfile {
  const raw = text.normalize('NFKC');
  const words = (raw
    .toLowerCase()
    .replace(/['’]/g, '')
    .match(/[\p{L}\p{N}]+/gu) ?? []) as string[];
  const content = new Set<string>();
  for (const word of words) if (!STOPWORDS.has(word) && !NEGATIONS.has(word)) content.add(stem(word));
  const bigrams = new Set<string>();
  for (let index = 1; index < words.length; index++) bigrams.add(`${words[index - 1]} ${words[index]}`);
  const squashed = ` ${words.join(' ')} `;
  const trigrams = new Set<string>();
  for (let index = 0; index + 3 <= squashed.length; index++) trigrams.add(squashed.slice(index, index + 3));
  const numbers = new Set<string>((raw.match(/\d+(?:[.,]\d+)*/g) ?? []).map((number) => number.replace(/,/g, '')));
  const names = new Set<string>();
  // Capitalised words not at the start of a sentence: names, places, products.
  const tokens = raw.match(/[\p{L}\p{N}][\p{L}\p{N}'’.-]*|[.?!]/gu) ?? [];
  let sentenceStart = true;
  for (const token of tokens) {
    if (/^[.?!]$/.test(token)) {
      sentenceStart = true;
      continue;
    }
    if (!sentenceStart && /^\p{Lu}/u.test(token) && token.toLowerCase() !== 'i') names.add(token.toLowerCase().replace(/[.'’]+$/, ''));
    sentenceStart = false;
  }
  let negations = 0;
  for (const word of words) if (NEGATIONS.has(word)) negations++;
  const questionWord = words.find((word) => QUESTION_WORDS.has(word));
  const order = new Map<string, number>();
  const qualifiers = new Set<string>();
  words.forEach((word, position) => {
    if (QUALIFIERS.has(word)) qualifiers.add(word);
    if (STOPWORDS.has(word) || NEGATIONS.has(word)) return;
    const stemmed = stem(word);
    if (!order.has(stemmed)) order.set(stemmed, position);
  });
  const relations: Relation[] = [];
  words.forEach((word, position) => {
    if (!DIRECTIONAL.has(word)) return;
    const side = (from: number, step: number): string[] => {
      const found: string[] = [];
      for (let at = from; at >= 0 && at < words.length && found.length < RELATION_WINDOW; at += step) {
        const candidate = words[at]!;
        if (DIRECTIONAL.has(candidate)) break;
        if (!STOPWORDS.has(candidate) && !NEGATIONS.has(candidate)) found.push(stem(candidate));
      }
      return found;
    };
    const left = side(position - 1, -1);
    const right = side(position + 1, 1);
    if (left.length > 0 && right.length > 0) relations.push({ marker: word, left, right });
  });
  const quantities = new Map<string, string>();
  words.forEach((word, position) => {
    const next = words[position + 1];
    if (/^\d+$/.test(word) && next !== undefined && !STOPWORDS.has(next) && !/^\d+$/.test(next) && !quantities.has(word)) quantities.set(word, stem(next));
  });
  return { words, content, bigrams, trigrams, numbers, names, negations, questionWord, order, qualifiers, relations, quantities };
}

/** `profile`, memoized per text in a bounded LRU: a verifier sees the same cached questions again and again. */
export function profileMemo(max = 4096): (text: string) => TextProfile {
  const profiles = new LRUCache<string, TextProfile>({ max });
  return (text) => {
    let found = profiles.get(text);
    if (!found) {
      found = profile(text);
      profiles.set(text, found);
    }
    return found;
  };
}

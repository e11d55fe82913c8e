import type { ChatRequest } from '../../src/core/types.js';
import type { LabelledPair, PairLabel } from './pairs.js';
import { normalQuestion, type ResponseCache } from '../../src/cache/response-cache.js';

/** One row of `cache-eval --json`. */
export interface CacheEvalResult {
  threshold: number;
  pairs: number;
  /** Share of `hit` pairs answered with a right answer (their `a`'s, or their own). */
  trueHitRate: number;
  /** Share of `hard_miss` and of `miss` pairs answered from the cache at all (null: no such pairs). */
  falseHitRate: { hard_miss: number | null; miss: number | null };
  /** Correct hits over all hits (a hit pair answered with another entry's answer is wrong). */
  precision: number | null;
  /** Share of `hit` pairs whose best entry is a right one, whatever the score. */
  retrievalAccuracy: number;
}

/** For each query, the best entry the cache would consider and its score. */
export interface CacheProbe {
  label: PairLabel;
  /** Whether the cache found any entry for the query. */
  found: boolean;
  /**
   * Whether that entry's answer is right for the query: its question is the query itself, or one
   * the file labels a `hit` of the query. (QQP questions recur across pairs, so a `hard_miss`
   * query can be a cached question in its own right; serving it its own answer is no false hit.)
   */
  correct: boolean;
  score: number;
}

export interface CacheEvalOptions {
  /** Called as questions are loaded and queried. */
  onProgress?: (phase: 'load' | 'query' | 'probe', done: number, total: number) => void;
  /** Texts embedded per batch while warming the memo. @default 64 */
  batch?: number;
}

const request = (question: string): ChatRequest => ({ model: 'cache-eval', messages: [{ role: 'user', content: question }] });

/**
 * Load every distinct `a` as a cached question with its own answer, then probe each `b`, through
 * the cache's real lookup path (scope, exact layer, store search, verifier).
 */
export async function probePairs(cache: ResponseCache, pairs: readonly LabelledPair[], options: CacheEvalOptions = {}): Promise<CacheProbe[]> {
  const batch = options.batch ?? 64;
  const questions = [...new Set(pairs.map((pair) => pair.a))];
  const equivalent = new Map<string, Set<string>>();
  const link = (from: string, to: string) => {
    let set = equivalent.get(from);
    if (!set) {
      set = new Set();
      equivalent.set(from, set);
    }
    set.add(to);
  };
  for (const pair of pairs) {
    if (pair.label !== 'hit') continue;
    link(pair.a, pair.b);
    link(pair.b, pair.a);
  }
  const warm = async (texts: readonly string[], phase: 'load' | 'query') => {
    for (let start = 0; start < texts.length; start += batch) {
      await cache.embeddings.embed(
        cache.embedder!,
        texts.slice(start, start + batch).map((text) => text.normalize('NFC').trim()),
      );
      options.onProgress?.(phase, Math.min(start + batch, texts.length), texts.length);
    }
  };
  await warm(questions, 'load');
  for (const [index, question] of questions.entries()) {
    // Stored as a miss would store it, even when an earlier question would already hit: every a
    // must be in the cache with its own answer.
    const ticket = cache.ticket(request(question), { tenant: 'cache-eval' });
    if (typeof ticket === 'string') continue;
    const [vector] = ticket.question ? await cache.embeddings.embed(cache.embedder!, [ticket.question]) : [undefined];
    await cache.commit(
      { ...ticket, vector },
      {
        format: 'openai',
        body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `answer:${index}` }, finish_reason: 'stop' }] },
      },
    );
  }
  const queries = pairs.map((pair) => pair.b);
  await warm([...new Set(queries)], 'query');
  const probes: CacheProbe[] = [];
  for (const pair of pairs) {
    const best = await cache.probe(request(pair.b), { tenant: 'cache-eval' });
    const content = (best?.response.body as { choices?: { message?: { content?: string } }[] } | undefined)?.choices?.[0]?.message?.content ?? '';
    const found = content.startsWith('answer:') ? questions[Number(content.slice(7))] : undefined;
    const correct = found !== undefined && (found === pair.b || (equivalent.get(pair.b)?.has(found) ?? false));
    probes.push({ label: pair.label, found: found !== undefined, correct, score: best ? best.score : Number.NEGATIVE_INFINITY });
    options.onProgress?.('probe', probes.length, pairs.length);
  }
  return probes;
}

/**
 * Spellings of one question that mean nothing else: lower and upper case, no or other trailing
 * punctuation, runs of whitespace, and compatibility forms (fullwidth "？", "Ｈ") that NFKC folds.
 */
export function spellingVariants(question: string): string[] {
  const bare = question.replace(/[\s.?!]+$/u, '');
  const fullwidth = (text: string) => text.replace(/[A-Za-z]/, (letter) => String.fromCharCode(letter.charCodeAt(0) + 0xfee0));
  return [
    ...new Set([question.toLowerCase(), question.toUpperCase(), bare, `${bare}?!`, `  ${question.replace(/ /g, '   ')}\t`, `${fullwidth(bare)}？`]),
  ].filter((variant) => variant !== question);
}

/**
 * How many spelling variants of cached questions the cache answers (with the question's own
 * answer, or the answer of a cached question spelled the same up to normalization): run after
 * `probePairs`, which stored every `a`. Returns hits and variants looked up.
 */
export async function variantHits(cache: ResponseCache, pairs: readonly LabelledPair[]): Promise<{ hits: number; total: number }> {
  const questions = [...new Set(pairs.map((pair) => pair.a))];
  let hits = 0;
  let total = 0;
  for (const [index, question] of questions.entries()) {
    for (const variant of spellingVariants(question)) {
      total++;
      const found = await cache.lookup(request(variant), { tenant: 'cache-eval' });
      const content =
        found.status === 'hit' ? (found.response.body as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message?.content : undefined;
      // Two cached questions that differ only in spelling share one key (the later answer stands): either answer is right.
      const answered = content?.startsWith('answer:') ? questions[Number(content.slice(7))] : undefined;
      if (content === `answer:${index}` || (answered !== undefined && normalQuestion(answered) === normalQuestion(question))) hits++;
      else if (found.status === 'miss') cache.release(found.ticket);
    }
  }
  return { hits, total };
}

/** Rates at one threshold (a probe is a hit when its score reaches it). */
export function scoreProbes(probes: readonly CacheProbe[], threshold: number): CacheEvalResult {
  let hitPairs = 0;
  let trueHits = 0;
  let retrieved = 0;
  let wrongHits = 0;
  const negatives = { hard_miss: 0, miss: 0 };
  const falseHits = { hard_miss: 0, miss: 0 };
  for (const probe of probes) {
    const hit = probe.found && probe.score >= threshold;
    if (probe.label === 'hit') {
      hitPairs++;
      if (probe.correct) retrieved++;
      if (hit && probe.correct) trueHits++;
      else if (hit) wrongHits++;
    } else {
      negatives[probe.label]++;
      if (hit && !probe.correct) falseHits[probe.label]++;
    }
  }
  // Precision is over the hits that were judged: hits on `hit` pairs, and false hits.
  const allHits = trueHits + wrongHits + falseHits.hard_miss + falseHits.miss;
  const round = (value: number) => Number(value.toFixed(4));
  return {
    threshold,
    pairs: probes.length,
    trueHitRate: round(trueHits / Math.max(1, hitPairs)),
    falseHitRate: {
      hard_miss: negatives.hard_miss ? round(falseHits.hard_miss / negatives.hard_miss) : null,
      miss: negatives.miss ? round(falseHits.miss / negatives.miss) : null,
    },
    precision: allHits ? round(trueHits / allHits) : null,
    retrievalAccuracy: round(retrieved / Math.max(1, hitPairs)),
  };
}

/** Thresholds of `--sweep`: a fixed grid plus the one given. */
export function sweepThresholds(around: number): number[] {
  const grid = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99];
  return [...new Set([...grid, Number(around.toFixed(4))])].sort((a, b) => a - b);
}

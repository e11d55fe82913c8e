import { addBill, type Bill, billRequests, emptyBill } from './bill.js';
import type { CacheRule, ModelPrice } from './cost.js';
import { mean } from './metrics.js';
import type { ReplayRun, RequestRecord } from './replay.js';
import { percentile } from './stats.js';

/** A price rule: a model of the price table, with its prices and cache rule. */
export interface PriceRule {
  name: string;
  price: ModelPrice;
  cacheRule: CacheRule;
}

/** One contender at one budget under one price rule. */
export interface ReplayRow {
  contender: string;
  budget: number;
  rule: string;
  requests: number;
  conversations: number;
  tokensBefore: number;
  tokensAfter: number;
  /** Dollars for the prompts, sent whole and compacted, with the rule's prompt caching. */
  promptBefore: number;
  promptAfter: number;
  /** Dollars for the outputs (the same either way). */
  output: number;
  /** Dollars the contender spent on its own model calls (an LLM summarizer), not in the saving. */
  extraCost: number;
  /** Share of the prompt bill saved (negative: compaction raised it). */
  saving: number;
  /** Dollars saved per 1,000 conversations like these. */
  savedPerThousand: number;
  /** Token-weighted share of prompt tokens billed at the cached rate. */
  cachedBefore: number;
  cachedAfter: number;
  /** Live-path retention of the QA items asked at the end of each conversation (categories 1–4). */
  erVerbatim: number | undefined;
  erFact: number | undefined;
  qaItems: number;
  /** Requests where the latest answer fits in half the budget, and how many dropped it. */
  latestChecked: number;
  latestDropped: number;
  /** Requests met by a fresh process: their mean fill of the target, and how many dropped a message that would have fit. */
  coldSamples: number;
  coldFill: number | undefined;
  /** Cold tokens over the same request's warm tokens. */
  coldWarm: number | undefined;
  coldDroppedWithRoom: number;
  /** Milliseconds the contender added per request. */
  msP50: number;
  msP99: number;
}

/** Where the bill comes from: requests by their uncompacted size. */
export interface LengthRow {
  rule: string;
  budget: number;
  bucket: string;
  requests: number;
  /** Share of the uncompacted prompt bill these requests make. */
  billShare: number;
  /** Prompt-bill saving per contender on these requests. */
  savings: Record<string, number>;
}

export const LENGTH_BUCKETS: readonly [string, number, number][] = [
  ['under 2k', 0, 2000],
  ['2k–8k', 2000, 8000],
  ['8k–32k', 8000, 32000],
  ['32k and more', 32000, Number.POSITIVE_INFINITY],
];

const billedBefore = (r: RequestRecord) => ({
  inputTokens: r.tokensBefore,
  prefixTokens: r.prefixBefore,
  breakpoints: r.breakpointsBefore,
  outputTokens: r.outputTokens,
});
const billedAfter = (r: RequestRecord) => ({
  inputTokens: r.tokensAfter,
  prefixTokens: r.prefixAfter,
  breakpoints: r.breakpointsAfter,
  outputTokens: r.outputTokens,
});

/** Each request's bill sent whole and compacted, billed conversation by conversation, in order. */
function requestBills(requests: readonly RequestRecord[], rule: PriceRule): { request: RequestRecord; before: Bill; after: Bill }[] {
  const byConversation = new Map<string, RequestRecord[]>();
  for (const request of requests) {
    const list = byConversation.get(request.conversation) ?? [];
    list.push(request);
    byConversation.set(request.conversation, list);
  }
  const out: { request: RequestRecord; before: Bill; after: Bill }[] = [];
  for (const list of byConversation.values()) {
    const before = billRequests(list.map(billedBefore), rule.price, rule.cacheRule);
    const after = billRequests(list.map(billedAfter), rule.price, rule.cacheRule);
    list.forEach((request, index) => {
      out.push({ request, before: before[index]!, after: after[index]! });
    });
  }
  return out;
}

function bills(requests: readonly RequestRecord[], rule: PriceRule): { before: Bill; after: Bill } {
  const before = emptyBill();
  const after = emptyBill();
  for (const bill of requestBills(requests, rule)) {
    addBill(before, bill.before);
    addBill(after, bill.after);
  }
  return { before, after };
}

/** Each run's bill and retention, under the rule it was replayed for. */
export function replayRows(runs: readonly ReplayRun[], rule: PriceRule): ReplayRow[] {
  return runs.map((run) => {
    const { before, after } = bills(run.requests, rule);
    const conversations = new Set(run.requests.map((request) => request.conversation)).size;
    const qa = run.qa.filter((sample) => sample.category !== 5);
    const latest = run.requests.filter((request) => request.latestAnswer !== undefined);
    const times = run.requests.map((request) => request.ms);
    return {
      contender: run.contender,
      budget: run.budget,
      rule: rule.name,
      requests: run.requests.length,
      conversations,
      tokensBefore: before.promptTokens,
      tokensAfter: after.promptTokens,
      promptBefore: before.prompt,
      promptAfter: after.prompt,
      output: after.output,
      extraCost: run.extraCost,
      saving: before.prompt === 0 ? 0 : 1 - after.prompt / before.prompt,
      savedPerThousand: conversations === 0 ? 0 : ((before.prompt - after.prompt) / conversations) * 1000,
      cachedBefore: before.promptTokens === 0 ? 0 : before.cachedTokens / before.promptTokens,
      cachedAfter: after.promptTokens === 0 ? 0 : after.cachedTokens / after.promptTokens,
      erVerbatim: mean(qa.map((sample) => sample.erVerbatim)),
      erFact: mean(qa.map((sample) => sample.erFact)),
      qaItems: qa.length,
      latestChecked: latest.length,
      latestDropped: latest.filter((request) => request.latestAnswer === 'dropped').length,
      coldSamples: run.cold.length,
      coldFill: mean(run.cold.map((sample) => sample.tokensAfter / sample.target)),
      coldWarm: mean(run.cold.map((sample) => sample.tokensAfter / sample.warmTokens)),
      coldDroppedWithRoom: run.cold.filter((sample) => sample.droppedWithRoom).length,
      msP50: percentile(times, 50),
      msP99: percentile(times, 99),
    };
  });
}

/** The replay's requests by uncompacted size, with each contender's saving in each bucket. */
export function lengthRows(runs: readonly ReplayRun[], rule: PriceRule, budget: number): LengthRow[] {
  const atBudget = runs.filter((run) => run.budget === budget);
  if (atBudget.length === 0) return [];
  const billed = new Map(atBudget.map((run) => [run, requestBills(run.requests, rule)]));
  const total = billed.get(atBudget[0]!)!.reduce((sum, bill) => sum + bill.before.prompt, 0);
  return LENGTH_BUCKETS.map(([bucket, low, high]) => {
    const savings: Record<string, number> = {};
    let share = 0;
    let requests = 0;
    for (const run of atBudget) {
      const inBucket = billed.get(run)!.filter((bill) => bill.request.tokensBefore >= low && bill.request.tokensBefore < high);
      const before = inBucket.reduce((sum, bill) => sum + bill.before.prompt, 0);
      const after = inBucket.reduce((sum, bill) => sum + bill.after.prompt, 0);
      savings[run.contender] = before === 0 ? 0 : 1 - after / before;
      if (run === atBudget[0]) {
        share = total === 0 ? 0 : before / total;
        requests = inBucket.length;
      }
    }
    return { rule: rule.name, budget, bucket, requests, billShare: share, savings };
  });
}

/** Tokens per request before and after, for every contender at one budget (the report's tokens-per-request chart). */
export function turnRows(
  runs: readonly ReplayRun[],
  budget: number,
): { conversation: string; turn: number; contender: string; tokensBefore: number; tokensAfter: number }[] {
  return runs
    .filter((run) => run.budget === budget)
    .flatMap((run) =>
      run.requests.map((request) => ({
        conversation: request.conversation,
        turn: request.turn,
        contender: run.contender,
        tokensBefore: request.tokensBefore,
        tokensAfter: request.tokensAfter,
      })),
    );
}

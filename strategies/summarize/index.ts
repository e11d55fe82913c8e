import type { Strategy, StrategyContext, StrategyResult } from '../../src/core/strategy.js';
import type { ChatMessage } from '../../src/core/types.js';
import { keepLatestExchange } from '../../src/core/nets.js';
import { stableHistory } from '../../src/core/window.js';
import type { Chunks, Item } from './chunks.js';
import { summaryFold } from './fold.js';
import { SUMMARIZE_OPTIONS, type SummarizeSettings, type SummarizeStrategyOptions } from './options.js';
import { type Summaries, summaryStrategy } from './summaries.js';

export { summaryFold } from './fold.js';
export { chunkTokensFor, SUMMARIZE_DEFAULTS, SUMMARIZE_OPTIONS, SUMMARY_LABEL, type SummarizeStrategyOptions } from './options.js';

/**
 * Rolling, prefix-stable summaries. The history is cut into fixed chunks (sessions, and every N
 * tokens at turn boundaries); a chunk's summary is keyed by the hashes of its messages, so the same
 * chunk gives the same bytes every turn.
 *
 * The prompt is laid out as system prompt, then the summaries of the chunks dropped so far, then
 * the recent turns verbatim, then the latest turn. The recent turns grow by appending until they
 * fill their room; then the oldest chunks are dropped at once, down to `lowWater` of it, and their
 * summaries appended to the others. Those steps are derived from the history itself, so every
 * request and every instance computes the same bytes, and between steps each prompt starts with
 * the previous one's: providers bill all of it but the new turn at their cached rate. Summaries of
 * the chunks the next step will drop are made in the background ahead of it. Protected messages
 * and tool-call units are never cut.
 *
 * @example
 * pipeline('summarize', [summarize({ mode: 'background' }), truncate()])
 */
export function summarize(options: SummarizeStrategyOptions = {}): Strategy {
  // Deprecated switch to the other layout, kept for callers of 0.x.
  if (SUMMARIZE_OPTIONS.parse(options).keepSource) return summaryFold(options);
  return summaryStrategy(options, stableLayout);
}

/** [system] [summaries of the dropped chunks] [recent turns, cut in steps] [latest turn]. */
async function stableLayout(history: Chunks, sums: Summaries, settings: SummarizeSettings, context: StrategyContext): Promise<StrategyResult> {
  const { parts, messages, chunkOf } = history;
  const chunks = history.list;
  const units = parts.units;
  const summaryRoom = Math.floor(settings.summaryShare * context.budget);
  const layout = stableHistory(messages, parts, {
    budget: context.budget,
    fixedTokens: context.fixedTokens,
    reserve: Math.ceil(settings.latestShare * context.budget) + summaryRoom,
    lowWater: settings.lowWater,
    firstTurns: 0,
    groupOf: (unit) => chunkOf[unit]!,
  });
  const keep = layout.keep;
  const startChunk = layout.start < units.length ? chunkOf[layout.start]! : chunks.length;

  // The summaries of every chunk before the window, in order, up to the first that is not ready:
  // appending a missing one later keeps the ones before it in place.
  const folded: Item[] = [];
  let missing = 0;
  for (let chunk = 0; chunk < startChunk; chunk++) {
    const item = history.item(chunk);
    if (missing === 0) {
      const text = await sums.summary(item, history.sourceOf(item), settings.summaryTokens);
      if (text !== undefined) {
        item.text = text;
        item.tokens = context.counter.message(sums.render(item));
        folded.push(item);
        continue;
      }
    } else if ((await sums.lookup(item.key)) === undefined) sums.schedule(item.key, history.sourceOf(item), settings.summaryTokens);
    missing++;
  }
  // Ahead of the next step: the chunks it would drop if it happened now are summarized in the
  // background, so that their summaries are ready when it comes.
  let scheduled = 0;
  if (settings.mode === 'background') {
    let size = 0;
    for (let unit = layout.start; unit < units.length; unit++) if (!units[unit]!.protected) size += units[unit]!.tokens;
    const room = layout.room;
    let rest = Math.max(size, room);
    for (let chunk = startChunk; chunk < chunks.length - 1 && rest > room * settings.lowWater; chunk++) {
      rest -= chunks[chunk]!.tokens;
      const item = history.item(chunk);
      if ((await sums.lookup(item.key)) === undefined && sums.schedule(item.key, history.sourceOf(item), settings.summaryTokens)) scheduled++;
    }
  }

  // Net first: the latest answer outranks summaries.
  let left = layout.left;
  const nets: Record<string, unknown> = {};
  const net = keepLatestExchange(messages, parts, keep, left, context.budget);
  left = net.left;
  if (net.added > 0) nets.latestAnswer = net.added;
  const dropped = await sums.condense(folded, summaryRoom, Math.max(0, left));
  left -= folded.reduce((sum, item) => sum + item.tokens, 0);

  // Net: summaries not made yet (a cold process, or the conversation's first step) leave their
  // room unused; the turns before the recent ones fill it, newest first, until they are ready.
  if (missing > 0) {
    let filled = 0;
    const covered = new Set(folded.flatMap((item) => item.members));
    for (let unit = units.length - 1; unit >= 0; unit--) {
      if (keep[unit] || units[unit]!.protected || units[unit]!.tokens > left || covered.has(units[unit]!.indices[0]!)) continue;
      keep[unit] = 1;
      left -= units[unit]!.tokens;
      filled++;
    }
    if (filled > 0) nets.cold = filled;
  }

  const at = new Map<number, Item>();
  for (const item of folded) at.set(item.first, item);
  const output: ChatMessage[] = [];
  let lastSummary: ChatMessage | undefined;
  for (let index = 0; index < messages.length; index++) {
    const item = at.get(index);
    if (item) {
      lastSummary = sums.render(item);
      output.push(lastSummary);
    }
    if (keep[parts.unitOf[index]!]) output.push(messages[index]!);
  }
  // Summaries sit where their chunks were: before the window, after the pinned prefix. A
  // summary placed later than a pinned message would sit inside the window's region.
  const prefixEnd = lastSummary ?? layout.prefixEnd;
  const breakpoints = [prefixEnd, layout.windowEnd].filter((message) => message !== undefined);
  const info: Record<string, unknown> = {
    chunks: chunks.length,
    summaries: folded.length,
    levels: folded.length > 0 ? 1 + Math.max(...folded.map((item) => item.level)) : 0,
    droppedSummaries: dropped,
    missing,
    scheduled,
    trimmed: layout.trimmed,
  };
  if (Object.keys(nets).length > 0) info.nets = nets;
  return { messages: output, breakpoints, failures: sums.failures, info };
}

import type { Messages } from './types.js';
import type { Partition } from './units.js';

/**
 * The latest answer: the newest assistant message before the latest user turn, with the user
 * message it answers, as units (protected ones left out). A follow-up ("make it shorter") is about
 * it, and on the request path it has no embedding yet, so relevance alone would rank it low.
 */
export function latestExchange(messages: Messages, parts: Partition): number[] {
  const end = parts.latestUser >= 0 ? parts.latestUser : messages.length;
  let answer = -1;
  for (let index = end - 1; index >= 0 && answer < 0; index--) if (messages[index]!.role === 'assistant') answer = index;
  if (answer < 0) return [];
  const units = [parts.unitOf[answer]!];
  for (let index = answer - 1; index >= 0; index--) {
    if (messages[index]!.role === 'user') {
      if (parts.unitOf[index] !== units[0]) units.unshift(parts.unitOf[index]!);
      break;
    }
  }
  return units.filter((unit) => !parts.units[unit]!.protected);
}

/**
 * Net: keep the latest answer and the message it answers when they fit in half the budget, giving
 * up other kept history for them if need be (`yieldOrder`, first given up first; by default the
 * oldest). Marks them in `keep` and returns the tokens left and how many units the net added
 * (0 when it did not act).
 */
export function keepLatestExchange(
  messages: Messages,
  parts: Partition,
  keep: Uint8Array,
  left: number,
  budget: number,
  yieldOrder?: readonly number[],
): { left: number; added: number; gaveUp: number } {
  const units = parts.units;
  const exchange = latestExchange(messages, parts).filter((unit) => !keep[unit]);
  const tokens = exchange.reduce((sum, unit) => sum + units[unit]!.tokens, 0);
  if (exchange.length === 0 || tokens > budget / 2) return { left, added: 0, gaveUp: 0 };
  const given: number[] = [];
  if (tokens > left) {
    const members = new Set(latestExchange(messages, parts));
    const order = (yieldOrder ?? units.map((_, unit) => unit)).filter((unit) => keep[unit] && !units[unit]!.protected && !members.has(unit));
    const spare = order.reduce((sum, unit) => sum + units[unit]!.tokens, 0);
    if (tokens > left + spare) return { left, added: 0, gaveUp: 0 };
    for (const unit of order) {
      if (tokens <= left) break;
      keep[unit] = 0;
      left += units[unit]!.tokens;
      given.push(unit);
    }
  }
  for (const unit of exchange) keep[unit] = 1;
  left -= tokens;
  // What was given up and still fits comes back, last given up first.
  let gaveUp = given.length;
  for (let position = given.length - 1; position >= 0; position--) {
    const unit = given[position]!;
    if (units[unit]!.tokens > left) continue;
    keep[unit] = 1;
    left -= units[unit]!.tokens;
    gaveUp--;
  }
  return { left, added: exchange.length, gaveUp };
}

/**
 * The agent suite: every assistant step of the shipped agent runs (bench/data/agent-traces) is one
 * request, the messages before it, compacted on the live path as a server runs it (library
 * defaults, `onBudgetUnreachable: 'error'`, the request's own model so price-aware stages see its
 * rule). Per contender × budget × price rule it prints refusals, structurally broken requests
 * (orphaned results, unanswered calls), requests over budget, the share of the values the step's
 * own tool call passes back that the request still holds, the prompt bill against sending
 * everything, the cached share, and the milliseconds per step.
 *
 * Side by side in the same run: sending everything, masking all but the last 3 tool results,
 * LangChain's `ClearToolUsesEdit` (trigger at the budget, keep 3) and the AI SDK's `pruneMessages`
 * (tool calls before the last 6 messages, applied when over the budget).
 *
 * The bill: a request's cached part is its run of messages shared, from the start, with the
 * previous request of the run, read at the rule's cached price when it is at least the model's
 * minimum; with a write price (GPT-5.6, Anthropic) the rest of a prompt over the minimum is written
 * at that price, as a cache breakpoint at the end of every request does. Prices and minimums come
 * from the price table (src/prices.ts); Gemini's rule (10% reads, 2,048-token minimum) is the bench's own.
 *
 * Prints figures and writes an SVG chart (bill against values kept, per rule); asserts nothing.
 * Run: npm run bench:agents [-- --md] [-- --svg FILE] [-- --dir FOLDER] [-- --quick]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pruneMessages, type ModelMessage } from 'ai';
import { type BaseMessage, ClearToolUsesEdit } from 'langchain';
import { createCompactor } from '../src/compose/compactor.js';
import { CompactorError } from '../src/core/errors.js';
import type { ChatMessage } from '../src/core/types.js';
import { cacheTerms, PRICES, type PriceTable } from '../src/prices.js';
import { packageRoot } from '../src/cli/package-root.js';
import { validToolChain } from '../src/testing/index.js';
import { type AgentRun, canonicalOf, fullText, loadAgentRuns, responsesBody } from './datasets/agent-traces.js';
import { argumentsObject, fromLangChain, toLangChain } from './harness/langchain.js';
import { Progress } from './harness/progress.js';
import { machine, markdownTable, percentile, table } from './harness/stats.js';
import { withoutCacheMarkers } from '../src/formats/explicit-breakpoints.js';

/** Runs the suite with `args` (the flags above); prints its tables on stdout and writes the chart. */
export async function runAgentSuite(args: readonly string[]): Promise<void> {
  const argv = args;
  const flag = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const markdown = argv.includes('--md');
  const quick = argv.includes('--quick');
  const anyPrefix = argv.includes('--any-prefix');
  const root = flag('--dir') ?? join(packageRoot(), 'bench', 'data', 'agent-traces');
  const svgFile = flag('--svg') ?? join(packageRoot(), 'bench', 'out', 'agents.svg');

  interface Rule {
    name: string;
    model: string;
    cached: number;
    write: number;
    minTokens: number;
  }
  /**
   * Gemini is not in the library's table (its `openai`-shaped rule would send OpenAI's cache key);
   * the bench passes it to the compactor as a custom price: implicit cache, 10% reads, 2,048-token
   * minimum (ai.google.dev/gemini-api/docs/caching, 2026-10-13; list price 2025-08).
   */
  const EXTRA_PRICES: PriceTable = {
    'gemini-2.5-pro': {
      input: 1.25,
      cachedInput: 0.125,
      output: 10,
      cacheRule: 'openai',
      minCachedTokens: 2048,
      source: 'https://ai.google.dev/gemini-api/docs/pricing',
      asOf: '2026-10-13',
    },
  };
  const ruleOf = (name: string, model: string): Rule => ({
    name,
    model,
    ...(({ cached, write, minTokens }) => ({ cached, write, minTokens }))(cacheTerms({ ...PRICES, ...EXTRA_PRICES }[model]!)),
  });
  const RULES: Rule[] = [
    ruleOf('gpt-4o', 'gpt-4o'),
    ruleOf('gpt-5', 'gpt-5'),
    ruleOf('gpt-5.6', 'gpt-5.6-terra'),
    ruleOf('claude-sonnet-4', 'claude-sonnet-4'),
    ruleOf('claude-opus-4-5', 'claude-opus-4-5'),
    ruleOf('gemini-2.5-pro', 'gemini-2.5-pro'),
  ];
  const BUDGETS = quick ? [4000, 16000] : [2000, 4000, 8000, 16000, 32000];
  const PRESETS = quick ? ['cache-aware'] : ['cache-aware', 'truncate'];
  const OTHER_PRESETS = ['relevance', 'summarize', 'balanced'];

  const runs = loadAgentRuns(root);
  const counter = await createCompactor().tokenCounter('gpt-4o');
  // Each rule's model counts as the compactor counts for it (Claude's count is an estimate above o200k's).
  const counters = new Map<string, Awaited<ReturnType<ReturnType<typeof createCompactor>['tokenCounter']>>>();
  {
    const probe = createCompactor({ prices: EXTRA_PRICES });
    for (const rule of RULES) counters.set(rule.model, await probe.tokenCounter(rule.model));
  }
  const keys = new WeakMap<ChatMessage, string>();
  const key = (message: ChatMessage) => {
    let known = keys.get(message);
    if (known === undefined) {
      // Cache markers are not prompt tokens: moving one does not break the prefix.
      const neutral = withoutCacheMarkers(message);
      known = JSON.stringify([neutral.role, neutral.content, neutral.tool_calls, neutral.tool_call_id]);
      keys.set(message, known);
    }
    return known;
  };

  interface Bill {
    cost: number;
    tokens: number;
    cached: number;
  }
  /** One run's requests billed under a rule, in input-price units. */
  function billRun(requests: readonly ChatMessage[][], rule: Rule): Bill {
    const earlier: ChatMessage[][] = [];
    const bill: Bill = { cost: 0, tokens: 0, cached: 0 };
    for (const messages of requests) {
      // The longest run of messages shared from the start with the previous request (or, with
      // --any-prefix, with any earlier request of the run, as a provider's prefix cache holds them).
      let best = 0;
      for (const previous of anyPrefix ? earlier : earlier.slice(-1)) {
        let at = 0;
        while (at < messages.length && at < previous.length && key(messages[at]!) === key(previous[at]!)) at++;
        best = Math.max(best, at);
      }
      let shared = 0;
      for (let at = 0; at < best; at++) shared += counter.message(messages[at]!);
      let tokens = 3;
      for (const message of messages) tokens += counter.message(message);
      const cached = shared >= rule.minTokens ? Math.min(shared, tokens) : 0;
      const rest = tokens - cached;
      const written = rule.write > 0 && tokens >= rule.minTokens ? rest : 0;
      bill.cost += cached * rule.cached + written * (1 + rule.write) + (rest - written);
      bill.tokens += tokens;
      bill.cached += cached;
      earlier.push(messages);
    }
    return bill;
  }

  interface Cell {
    steps: number;
    refused: number;
    /** Refused although the core (system prompt, latest user message, latest exchange with its results cut to 100 tokens) fits. */
    refusedCoreFits: number;
    broken: number;
    over: number;
    kept: number;
    needed: number;
    /** Values needed by the steps that were served (not refused). */
    neededServed: number;
    cost: number;
    whole: number;
    tokens: number;
    cached: number;
    ms: number[];
  }
  const emptyCell = (): Cell => ({
    steps: 0,
    refused: 0,
    refusedCoreFits: 0,
    broken: 0,
    over: 0,
    kept: 0,
    needed: 0,
    neededServed: 0,
    cost: 0,
    whole: 0,
    tokens: 0,
    cached: 0,
    ms: [],
  });
  /** One cell per group, contender, budget and rule. */
  const cells = new Map<string, Cell>();
  const cellOf = (group: string, contender: string, budget: string, rule: string) => {
    const id = `${group}|${contender}|${budget}|${rule}`;
    let cell = cells.get(id);
    if (!cell) {
      cell = emptyCell();
      cells.set(id, cell);
    }
    return cell;
  };

  const wholeBills = new Map<AgentRun, Map<string, Bill>>();
  for (const run of runs) {
    const bills = new Map<string, Bill>();
    for (const rule of RULES)
      bills.set(
        rule.name,
        billRun(
          run.steps.map((step) => step.canonical),
          rule,
        ),
      );
    wholeBills.set(run, bills);
  }

  /** Record one contender's requests for a run (undefined: refused, billed as sent whole). */
  function record(
    run: AgentRun,
    contender: string,
    budget: string,
    sent: readonly (ChatMessage[] | undefined)[],
    ms: readonly number[],
    rules: readonly Rule[],
    budgetTokens?: number,
  ) {
    for (const rule of rules) {
      const cell = cellOf(run.group, contender, budget, rule.name);
      const billed = sent.map((messages, index) => messages ?? run.steps[index]!.canonical);
      const bill = billRun(billed, rule);
      cell.cost += bill.cost;
      cell.tokens += bill.tokens;
      cell.cached += bill.cached;
      cell.whole += wholeBills.get(run)!.get(rule.name)!.cost;
      cell.ms.push(...ms);
      run.steps.forEach((step, index) => {
        cell.steps++;
        const messages = sent[index];
        cell.needed += step.values.length;
        if (!messages) {
          cell.refused++;
          if (budgetTokens !== undefined && coreTokens(step.canonical, rule.model) <= budgetTokens) cell.refusedCoreFits++;
          return;
        }
        cell.neededServed += step.values.length;
        if (!validToolChain(messages)) cell.broken++;
        if (budgetTokens !== undefined && counter.messages(messages) + 3 > budgetTokens) cell.over++;
        const text = messages.map(fullText).join('\n');
        cell.kept += step.values.filter((value) => text.includes(value)).length;
      });
    }
  }

  /** The core of a step: system prompt, latest user message, latest assistant message after it, its results cut to 100 tokens. */
  function coreTokens(messages: readonly ChatMessage[], model: string): number {
    const count = counters.get(model) ?? counter;
    const latestUser = messages.findLastIndex((message) => message.role === 'user');
    const latestAssistant = messages.findLastIndex((message, index) => index > latestUser && message.role === 'assistant');
    let tokens = 3;
    messages.forEach((message, index) => {
      if (message.role === 'system' || message.role === 'developer' || index === latestUser || index === latestAssistant) tokens += count.message(message);
      else if (latestAssistant >= 0 && index > latestAssistant) tokens += Math.min(100, count.message(message));
    });
    return tokens;
  }

  // Baselines and peers: their output does not depend on the price rule.
  const masked = (messages: ChatMessage[]): ChatMessage[] => {
    const results = messages.flatMap((message, index) => (message.role === 'tool' ? [index] : []));
    const keep = new Set(results.slice(-3));
    return messages.map((message, index) => (message.role === 'tool' && !keep.has(index) ? { ...message, content: '[cleared]' } : message));
  };

  async function langChainEdit(messages: ChatMessage[], budget: number): Promise<ChatMessage[]> {
    const converted = messages.map(toLangChain);
    const edit = new ClearToolUsesEdit({ trigger: { tokens: budget }, keep: { messages: 3 } });
    const countTokens = (list: BaseMessage[]) => list.reduce((sum, message) => sum + counter.message(fromLangChain(message)), 0);
    // The model is read only for fractional triggers, which this configuration does not use.
    await edit.apply({ messages: converted, countTokens, model: undefined as never });
    // The edit replaces tool results' content in place: map them back by position.
    return messages.map((message, index) => {
      const edited = converted[index];
      if (message.role !== 'tool' || !edited || typeof edited.content !== 'string' || edited.content === message.content) return message;
      return { ...message, content: edited.content };
    });
  }

  function toModelMessages(messages: readonly ChatMessage[]): ModelMessage[] {
    const names = new Map<string, string>();
    return messages.map((message): ModelMessage => {
      const text = typeof message.content === 'string' ? message.content : fullText({ ...message, tool_calls: undefined });
      if (message.role === 'system' || message.role === 'developer') return { role: 'system', content: text };
      if (message.role === 'user') return { role: 'user', content: text };
      if (message.role === 'tool') {
        const id = String(message.tool_call_id);
        return { role: 'tool', content: [{ type: 'tool-result', toolCallId: id, toolName: names.get(id) ?? 'tool', output: { type: 'text', value: text } }] };
      }
      const parts: Exclude<Extract<ModelMessage, { role: 'assistant' }>['content'], string> = [];
      if (text.trim()) parts.push({ type: 'text', text });
      for (const call of message.tool_calls ?? []) {
        names.set(call.id, call.function.name);
        parts.push({ type: 'tool-call', toolCallId: call.id, toolName: call.function.name, input: argumentsObject(call.function.arguments) });
      }
      return { role: 'assistant', content: parts };
    });
  }
  function fromModelMessages(messages: readonly ModelMessage[]): ChatMessage[] {
    const out: ChatMessage[] = [];
    for (const message of messages) {
      if (message.role === 'system') out.push({ role: 'system', content: message.content });
      else if (message.role === 'user')
        out.push({ role: 'user', content: typeof message.content === 'string' ? message.content : JSON.stringify(message.content) });
      else if (message.role === 'assistant') {
        const parts = typeof message.content === 'string' ? [{ type: 'text' as const, text: message.content }] : message.content;
        const text = parts.flatMap((part) => (part.type === 'text' ? [part.text] : [])).join('\n');
        const calls = parts.flatMap((part) =>
          part.type === 'tool-call'
            ? [{ id: part.toolCallId, type: 'function' as const, function: { name: part.toolName, arguments: JSON.stringify(part.input) } }]
            : [],
        );
        out.push(calls.length > 0 ? { role: 'assistant', content: text || null, tool_calls: calls } : { role: 'assistant', content: text });
      } else if (message.role === 'tool') {
        for (const part of message.content) {
          if (part.type !== 'tool-result') continue;
          const output = part.output as { type: string; value?: unknown };
          out.push({
            role: 'tool',
            tool_call_id: part.toolCallId,
            content: typeof output.value === 'string' ? output.value : JSON.stringify(output.value ?? ''),
          });
        }
      }
    }
    return out;
  }

  const totalSteps = runs.reduce((sum, run) => sum + run.steps.length, 0);
  {
    const bar = new Progress('baselines and peers', totalSteps * (2 + 2 * BUDGETS.length));
    for (const run of runs) {
      const steps = run.steps.map((step) => step.canonical);
      record(run, 'send everything', 'none', steps, [], RULES);
      bar.tick(steps.length);
      record(run, 'mask all but last 3', 'none', steps.map(masked), [], RULES);
      bar.tick(steps.length);
      for (const budget of BUDGETS) {
        const lc: ChatMessage[][] = [];
        const lcMs: number[] = [];
        const sdk: ChatMessage[][] = [];
        const sdkMs: number[] = [];
        for (const messages of steps) {
          let started = performance.now();
          lc.push(await langChainEdit(messages, budget));
          lcMs.push(performance.now() - started);
          started = performance.now();
          const over = counter.messages(messages) + 3 > budget;
          sdk.push(over ? fromModelMessages(pruneMessages({ messages: toModelMessages(messages), toolCalls: 'before-last-6-messages' })) : messages);
          sdkMs.push(performance.now() - started);
        }
        record(run, 'LangChain ClearToolUsesEdit', String(budget), lc, lcMs, RULES, budget);
        bar.tick(steps.length);
        record(run, 'AI SDK pruneMessages', String(budget), sdk, sdkMs, RULES, budget);
        bar.tick(steps.length);
      }
    }
    bar.finish();
  }

  // The default preset also in the Responses shape: every run's steps as Responses bodies.
  const shapes = (preset: string): ('native' | 'responses')[] => (preset === 'cache-aware' ? ['native', 'responses'] : ['native']);
  for (const preset of PRESETS) {
    for (const shape of shapes(preset))
      for (const budget of BUDGETS) {
        const compactor = createCompactor({ maxInputTokens: budget, strategy: preset, prices: EXTRA_PRICES });
        const name = shape === 'responses' ? `${preset} (Responses)` : preset;
        const bar = new Progress(`${name} at ${budget}`, totalSteps * RULES.length);
        for (const rule of RULES) {
          for (const run of runs) {
            const sent: (ChatMessage[] | undefined)[] = [];
            const ms: number[] = [];
            for (const step of run.steps) {
              const started = performance.now();
              try {
                const format = shape === 'responses' ? 'responses' : run.format;
                const body =
                  shape === 'responses'
                    ? { model: rule.model, ...responsesBody(step.canonical) }
                    : { model: rule.model, ...(run.format === 'anthropic' ? { max_tokens: 1024 } : {}), ...step.body };
                const result = await compactor.compact(body, { format, cacheHints: false });
                if (result.kind !== 'compacted') throw new Error('no response cache here');
                ms.push(performance.now() - started);
                sent.push(canonicalOf(format, result.request as { messages: unknown[] }));
              } catch (error) {
                if (!CompactorError.isInstance(error) || error.code !== 'budget.unreachable') throw error;
                ms.push(performance.now() - started);
                sent.push(undefined);
              }
              bar.tick();
            }
            record(run, name, String(budget), sent, ms, [rule], budget);
          }
        }
        bar.finish();
        await compactor.close();
      }
  }

  // Validity of the other presets (one rule, gpt-5): refusals whose core fits, broken requests, requests over budget.
  const validity: string[][] = [['preset', 'budget', 'steps', 'refused (core fits)', 'broken', 'over budget']];
  for (const preset of quick ? [] : OTHER_PRESETS) {
    for (const budget of BUDGETS) {
      const compactor = createCompactor({ maxInputTokens: budget, strategy: preset });
      let refused = 0;
      let fits = 0;
      let broken = 0;
      let over = 0;
      let steps = 0;
      const bar = new Progress(`${preset} at ${budget} (validity)`, totalSteps);
      for (const run of runs) {
        for (const step of run.steps) {
          steps++;
          try {
            const body = { model: 'gpt-5', ...(run.format === 'anthropic' ? { max_tokens: 1024 } : {}), ...step.body };
            const result = await compactor.compact(body, { format: run.format, cacheHints: false });
            if (result.kind !== 'compacted') throw new Error('no response cache here');
            const sent = canonicalOf(run.format, result.request as { messages: unknown[] });
            if (!validToolChain(sent)) broken++;
            if (result.stats.tokensAfter > budget) over++;
          } catch (error) {
            if (!CompactorError.isInstance(error) || error.code !== 'budget.unreachable') throw error;
            refused++;
            if (coreTokens(step.canonical, 'gpt-5') <= budget) fits++;
          }
          bar.tick();
        }
      }
      bar.finish();
      await compactor.close();
      validity.push([preset, String(budget), String(steps), `${refused} (${fits})`, String(broken), String(over)]);
    }
  }

  // Tables: one per group, contenders × budgets, a column pair per rule.
  const pct = (value: number) => `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}%`;
  const contenders = [
    'send everything',
    'mask all but last 3',
    'LangChain ClearToolUsesEdit',
    'AI SDK pruneMessages',
    ...PRESETS.flatMap((preset) => shapes(preset).map((shape) => (shape === 'responses' ? `${preset} (Responses)` : preset))),
  ];
  const out: string[] = [];
  for (const group of ['short', 'long']) {
    const groupRuns = runs.filter((run) => run.group === group);
    if (groupRuns.length === 0) continue;
    const steps = groupRuns.reduce((sum, run) => sum + run.steps.length, 0);
    const rows: string[][] = [
      [
        'contender',
        'budget',
        'refused (core fits)',
        'broken',
        'over',
        'values kept (served steps)',
        ...RULES.map((rule) => `bill ${rule.name}`),
        'cached (gpt-5)',
        'ms p50 / p99',
      ],
    ];
    for (const contender of contenders) {
      const budgets = contender === 'send everything' || contender.startsWith('mask') ? ['none'] : BUDGETS.map(String);
      for (const budget of budgets) {
        const first = cells.get(`${group}|${contender}|${budget}|${RULES[0]!.name}`);
        if (!first) continue;
        const gpt5 = cells.get(`${group}|${contender}|${budget}|gpt-5`)!;
        const ruleCells = RULES.map((rule) => cells.get(`${group}|${contender}|${budget}|${rule.name}`)!);
        const refused = Math.max(...ruleCells.map((cell) => cell.refused));
        const refusedCoreFits = Math.max(...ruleCells.map((cell) => cell.refusedCoreFits));
        const broken = Math.max(...ruleCells.map((cell) => cell.broken));
        const over = Math.max(...ruleCells.map((cell) => cell.over));
        const kept = Math.min(...ruleCells.map((cell) => cell.kept / Math.max(1, cell.needed)));
        const keptServed = Math.min(...ruleCells.map((cell) => cell.kept / Math.max(1, cell.neededServed)));
        rows.push([
          contender,
          budget,
          `${refused} (${refusedCoreFits})`,
          String(broken),
          budget === 'none' ? '–' : String(over),
          keptServed < kept + 0.0005 ? kept.toFixed(3) : `${kept.toFixed(3)} (${keptServed.toFixed(3)})`,
          ...ruleCells.map((cell) => pct(cell.cost / cell.whole - 1)),
          `${((100 * gpt5.cached) / gpt5.tokens).toFixed(0)}%`,
          first.ms.length > 0 ? `${percentile(gpt5.ms, 50).toFixed(2)} / ${percentile(gpt5.ms, 99).toFixed(1)}` : '–',
        ]);
      }
    }
    const sources = [...new Set(groupRuns.map((run) => run.source))].join(', ');
    out.push(
      `${group === 'long' ? 'Long' : 'Short'} runs (${sources}): ${groupRuns.length} runs, ${steps} steps`,
      markdown ? markdownTable(rows) : table(rows),
      '',
    );
  }
  // Added latency on a 200-step history: a real long run's exchanges repeated (with fresh ids) to 200
  // assistant steps, compacted as a server does (default preset, 16k, gpt-5). "Next step" is the
  // realistic path: each request is the previous one plus one exchange, so only its new messages are
  // counted; "same request" repeats one request.
  {
    const base = runs.filter((run) => run.format === 'openai' && run.group === 'long').sort((a, b) => b.steps.length - a.steps.length)[0]!;
    const source = base.steps.at(-1)!.canonical;
    const head = source.slice(0, 2);
    const body = source.slice(2);
    const history: ChatMessage[] = [...head];
    for (let lap = 0; history.filter((message) => message.role === 'assistant').length < 200; lap++) {
      for (const message of body) {
        history.push(
          message.role === 'tool'
            ? { ...message, tool_call_id: `${message.tool_call_id}_${lap}`, content: `${String(message.content)} (${lap})` }
            : message.tool_calls
              ? { ...message, tool_calls: message.tool_calls.map((call) => ({ ...call, id: `${call.id}_${lap}` })) }
              : { ...message, content: `${String(message.content)} (${lap})` },
        );
        if (history.filter((entry) => entry.role === 'assistant').length >= 200 && message.role === 'tool') break;
      }
    }
    const ends = history.flatMap((message, index) => (message.role === 'assistant' ? [index] : []));
    const compactor = createCompactor({ maxInputTokens: 16000 });
    const stepMs: number[] = [];
    for (const [ordinal, end] of ends.entries()) {
      const started = performance.now();
      await compactor.compact({ model: 'gpt-5', messages: history.slice(0, end) }, { cacheHints: false });
      if (ordinal >= 150) stepMs.push(performance.now() - started);
    }
    const last = { model: 'gpt-5', messages: history.slice(0, ends.at(-1)!) };
    const sameMs: number[] = [];
    for (let run = 0; run < 100; run++) {
      const started = performance.now();
      await compactor.compact(last, { cacheHints: false });
      sameMs.push(performance.now() - started);
    }
    await compactor.close();
    const tokens = counter.messages(last.messages);
    out.push(
      `Latency, 200-step agent history (${last.messages.length} messages, ${tokens} tokens, from ${base.name}; default preset, 16k, gpt-5):`,
      markdown
        ? markdownTable([
            ['path', 'p50 ms', 'p99 ms'],
            ['next step (steps 150–200, new messages only counted)', percentile(stepMs, 50).toFixed(2), percentile(stepMs, 99).toFixed(2)],
            ['same request, warm (100 runs)', percentile(sameMs, 50).toFixed(2), percentile(sameMs, 99).toFixed(2)],
          ])
        : `next step p50 ${percentile(stepMs, 50).toFixed(2)} ms, p99 ${percentile(stepMs, 99).toFixed(2)} ms; same request p50 ${percentile(sameMs, 50).toFixed(2)} ms`,
      '',
    );
  }
  // The same runs in the Responses shape: how far its bills are from the chat shape's.
  {
    let worst = 0;
    let where = '';
    for (const group of ['short', 'long'] as const)
      for (const budget of BUDGETS)
        for (const rule of RULES) {
          const chat = cells.get(`${group}|cache-aware|${budget}|${rule.name}`);
          const responses = cells.get(`${group}|cache-aware (Responses)|${budget}|${rule.name}`);
          if (!chat || !responses) continue;
          const gap = Math.abs(responses.cost / responses.whole - chat.cost / chat.whole) * 100;
          if (gap > worst) [worst, where] = [gap, `${group} runs, ${budget}, ${rule.name}`];
        }
    if (where !== '') out.push(`Responses shape against chat shape (cache-aware): bills differ by at most ${worst.toFixed(2)} points (${where}).`, '');
  }
  if (validity.length > 1) out.push('Validity of the other presets, all runs (gpt-5):', markdown ? markdownTable(validity) : table(validity), '');
  out.push(
    'Bill: the prompt bill against sending everything, under each rule with its own model (negative saves). Refused (in brackets: of those, steps whose core fits the budget), broken and over budget are the worst of the rules; values kept the lowest. A refused step is billed as sent whole and keeps no values (in brackets, where it differs: values kept over the served steps alone).' +
      (anyPrefix
        ? ' Cache: --any-prefix (a prompt is read from the longest prefix it shares with any earlier request of its run).'
        : ' Cache: the prefix shared with the previous request only (--any-prefix: with any earlier request of the run).'),
    machine(),
  );
  process.stdout.write(`${out.join('\n')}\n`);

  // The chart: bill against values kept, one panel per rule, the default preset's budgets joined by a line.
  // Drawn from the default bill only: an --any-prefix run leaves the chart alone.
  if (!anyPrefix) {
    mkdirSync(dirname(svgFile), { recursive: true });
    writeFileSync(svgFile, chart());
    console.error(`chart: ${svgFile}`);
  }

  function chart(): string {
    const width = 300;
    const height = 240;
    const pad = 40;
    const colors: Record<string, string> = {
      'cache-aware': '#1f77b4',
      truncate: '#9467bd',
      'LangChain ClearToolUsesEdit': '#d62728',
      'AI SDK pruneMessages': '#ff7f0e',
      'mask all but last 3': '#2ca02c',
      'send everything': '#555',
    };
    const panels = RULES.map((rule, panel) => {
      const points = contenders.flatMap((contender) =>
        (contender === 'send everything' || contender.startsWith('mask') ? ['none'] : BUDGETS.map(String)).flatMap((budget) => {
          const cell = cells.get(`long|${contender}|${budget}|${rule.name}`);
          return cell ? [{ contender, budget, x: cell.cost / cell.whole - 1, y: cell.kept / Math.max(1, cell.needed) }] : [];
        }),
      );
      const xs = points.map((point) => point.x);
      const lo = Math.min(-0.1, ...xs);
      const hi = Math.max(0.1, ...xs);
      const sx = (x: number) => pad + ((x - lo) / (hi - lo)) * (width - pad - 10);
      const sy = (y: number) => height - pad - y * (height - pad - 20);
      const ox = (panel % 3) * (width + 20);
      const oy = Math.floor(panel / 3) * (height + 30);
      const marks = points
        .map(
          (point) =>
            `<circle cx="${sx(point.x).toFixed(1)}" cy="${sy(point.y).toFixed(1)}" r="3.5" fill="${colors[point.contender]}"><title>${point.contender} ${point.budget}: ${pct(point.x)}, ${point.y.toFixed(3)}</title></circle>`,
        )
        .join('');
      const line = (contender: string) => {
        const path = points.filter((point) => point.contender === contender).map((point) => `${sx(point.x).toFixed(1)},${sy(point.y).toFixed(1)}`);
        return path.length > 1 ? `<polyline points="${path.join(' ')}" fill="none" stroke="${colors[contender]}" stroke-width="1.2"/>` : '';
      };
      return `<g transform="translate(${ox},${oy})"><text x="${pad}" y="14" font-size="12" font-weight="bold">${rule.name}</text>
  <line x1="${sx(0)}" y1="20" x2="${sx(0)}" y2="${height - pad}" stroke="#aaa" stroke-dasharray="3,3"/>
  <line x1="${pad}" y1="${height - pad}" x2="${width - 10}" y2="${height - pad}" stroke="#333"/><line x1="${pad}" y1="20" x2="${pad}" y2="${height - pad}" stroke="#333"/>
  <text x="${pad}" y="${height - pad + 14}" font-size="10">${pct(lo)}</text><text x="${width - 50}" y="${height - pad + 14}" font-size="10">${pct(hi)}</text>
  <text x="${pad - 4}" y="24" font-size="10" text-anchor="end">1.0</text><text x="${pad - 4}" y="${height - pad}" font-size="10" text-anchor="end">0</text>
  <text x="${(width + pad) / 2}" y="${height - 8}" font-size="10" text-anchor="middle">bill vs sending everything (left saves)</text>
  ${contenders.map(line).join('')}${marks}</g>`;
    });
    const legend = contenders
      .map(
        (contender, index) =>
          `<g transform="translate(${10 + index * 160},${2 * (height + 30) + 10})"><circle cx="5" cy="-4" r="4" fill="${colors[contender]}"/><text x="14" y="0" font-size="11">${contender}</text></g>`,
      )
      .join('');
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${3 * (width + 20)}" height="${2 * (height + 30) + 30}" font-family="sans-serif">
  <text x="10" y="0" font-size="0">Long agent runs: values kept (y) against the prompt bill (x), per rule; a line joins each contender's budgets.</text>
  ${panels.join('\n')}${legend}</svg>`;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runAgentSuite(process.argv.slice(2));
  process.exit(0);
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createCompactor } from '../../src/compose/compactor.js';
import { CompactorError, invalidOption } from '../../src/core/errors.js';
import { type PresetOptions, presetNames } from '../../strategies/presets.js';
import { lookupModel } from '../../src/tokens/models.js';
import { benchRoot } from '../paths.js';
import { type Contender, noCompaction, PRICE_AWARE, presetContender, trimMessagesContender } from './contenders.js';
import { loadPrices, priceFor } from './cost.js';
import { type BenchConversation, type DatasetKind, loadDataset } from './loaders.js';
import { measureLatency, type ReplayRun, runReplays } from './replay.js';
import { type BenchReport, consoleReport, htmlReport, markdownReport, recommend } from './report.js';
import { runQa, type Violation } from './run.js';
import { machine } from './stats.js';
import { lengthRows, type PriceRule, replayRows, turnRows } from './summary.js';

export interface BenchFlags {
  /** `chat` (the transcripts, default) or `agents` (bench/agent-suite.ts). */
  suite?: string;
  data?: string[];
  mode: string;
  budgets: string;
  qaBudgets: string;
  rules: string;
  presets?: string;
  peers: boolean;
  await?: boolean;
  coldTurns: string;
  prices?: string;
  presetOptions?: string;
  json?: string;
  md?: string;
  html?: string;
  swapRoles?: boolean;
  limit?: string;
  progress: boolean;
}

const KINDS = new Set<DatasetKind>(['locomo', 'mtbench101', 'topical-chat', 'jsonl']);

/** The default suite: the data shipped in bench/data. */
export function shippedData(): string[] {
  const root = join(benchRoot(), 'data');
  return [
    `locomo:${join(root, 'locomo', 'locomo-dev.json')}`,
    `topical-chat:${join(root, 'topical-chat', 'topical-chat-subset.json')}`,
    `mtbench101:${join(root, 'mtbench101', 'mtbench101-subset.jsonl')}`,
  ];
}

function numbers(option: string, text: string, minimum = 1): number[] {
  const values = text.split(',').map((value) => Number(value.trim()));
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value < minimum))
    invalidOption(option, `a comma-separated list of whole numbers >= ${minimum}`, text);
  return values;
}

/** Rules whose models count tokens the same way share a replay, unless a contender reads the price. */
function countingKey(model: string): string {
  const info = lookupModel(model, {});
  return info?.encoding ? info.encoding : `approximate:${info?.tokenMultiplier ?? 'default'}`;
}

export async function benchCommand(flags: BenchFlags): Promise<void> {
  if (flags.suite === 'agents') {
    const { runAgentSuite } = await import('../agent-suite.js');
    if (flags.md) writeFileSync(flags.md, await captureStdout(() => runAgentSuite(['--md'])));
    else await runAgentSuite([]);
    return;
  }
  if (flags.suite !== undefined && flags.suite !== 'chat') invalidOption('suite', '"chat" or "agents"', flags.suite);
  const modes = new Set(flags.mode.split(',').map((mode) => mode.trim()));
  for (const mode of modes) if (mode !== 'qa' && mode !== 'replay') invalidOption('mode', '"replay", "qa" or "replay,qa"', flags.mode);
  const budgets = numbers('budgets', flags.budgets);
  const qaBudgets = numbers('qa-budgets', flags.qaBudgets);
  const [coldTurns] = numbers('cold-turns', flags.coldTurns, 0);
  const limit = flags.limit === undefined ? undefined : numbers('limit', flags.limit)[0];
  const presets = flags.presets === undefined ? presetNames() : flags.presets.split(',').map((name) => name.trim());
  for (const preset of presets) if (!presetNames().includes(preset)) invalidOption('presets', `names from ${presetNames().join(', ')}`, preset);
  const prices = loadPrices(flags.prices);
  let presetOptions: PresetOptions | undefined;
  if (flags.presetOptions !== undefined) {
    try {
      presetOptions = JSON.parse(flags.presetOptions) as PresetOptions;
    } catch (error) {
      throw new CompactorError('options.invalid', `option "preset-options" must be JSON: ${(error as Error).message}`, { pointer: 'preset-options' });
    }
    if (typeof presetOptions !== 'object' || presetOptions === null || Array.isArray(presetOptions))
      invalidOption('preset-options', 'a JSON object { truncate?, cacheAware?, relevance?, summarize? }', presetOptions);
  }
  const withOptions = presetOptions ? { options: { presetOptions } } : {};
  const rules: PriceRule[] = flags.rules.split(',').map((name) => {
    const price = priceFor(prices, name.trim());
    return { name: name.trim(), price, cacheRule: price.cacheRule ?? 'openai' };
  });

  const specs = flags.data && flags.data.length > 0 ? flags.data : shippedData();
  const conversations: BenchConversation[] = [];
  const dataNames: string[] = [];
  for (const spec of specs) {
    const match = /^([a-z0-9-]+):(.+)$/.exec(spec);
    const kind = match && KINDS.has(match[1] as DatasetKind) ? (match[1] as DatasetKind) : undefined;
    const file = kind ? match![2]! : spec;
    const loaded = loadDataset(file, kind, { swapRoles: Boolean(flags.swapRoles) });
    conversations.push(...loaded);
    dataNames.push(`${relative(process.cwd(), file) || file} (${loaded.length} conversations)`);
  }
  if (conversations.length === 0) throw new CompactorError('input.invalid', 'no conversations in the data', { pointer: 'data' });
  const spread = <T>(items: readonly T[]): T[] =>
    limit === undefined || items.length <= limit ? [...items] : Array.from({ length: limit }, (_, index) => items[Math.floor((index * items.length) / limit)]!);
  const withLimit = conversations.map((conversation) => (conversation.qa ? { ...conversation, qa: spread(conversation.qa) } : conversation));

  const live = !flags.await;
  const makeContenders = async (model: string): Promise<Contender[]> => {
    const counter = await createCompactor().tokenCounter(model);
    const contenders: Contender[] = [noCompaction(), ...presets.map((preset) => presetContender(preset, { live, ...withOptions }))];
    if (flags.peers) contenders.splice(presets.includes('truncate') ? 2 : 1, 0, await trimMessagesContender(counter));
    return contenders;
  };
  const contenderNames = (await makeContenders(rules[0]!.name)).map((contender) => contender.name);
  const violations: Violation[] = [];
  const report: BenchReport = {
    meta: {
      machine: machine(),
      budgets,
      qaBudgets: modes.has('qa') ? qaBudgets : [],
      rules: rules.map((rule) => ({ name: rule.name, cacheRule: rule.cacheRule, ...rule.price })),
      path: live ? 'live' : 'awaited',
      data: dataNames,
      contenders: contenderNames,
      conversations: conversations.length,
      command: `context-compactor bench ${process.argv.slice(3).join(' ')}`.trim(),
    },
    violations,
    disqualified: [],
    replay: [],
    lengths: [],
    qa: [],
    turns: [],
    latency: [],
    recommendation: undefined,
  };

  if (modes.has('replay')) {
    // One replay per way of counting tokens; price-aware presets replay per rule, since what they
    // keep depends on the model's prices.
    const shared = new Map<string, ReplayRun[]>();
    for (const rule of rules) {
      const model = rule.name;
      const key = countingKey(model);
      const counter = await createCompactor().tokenCounter(model);
      const contenders = await makeContenders(model);
      const reused = shared.get(key);
      const needed = reused ? contenders.filter((contender) => PRICE_AWARE.has(contender.name)) : contenders;
      process.stderr.write(`replaying for ${rule.name} (${needed.map((contender) => contender.name).join(', ')})\n`);
      const fresh = await runReplays(
        withLimit.map((conversation) => ({ ...conversation, model })),
        needed,
        { budgets, model, counter, qa: true, coldTurns: coldTurns!, progress: flags.progress },
        violations,
      );
      const runs = reused ? [...reused.filter((run) => !PRICE_AWARE.has(run.contender)), ...fresh] : fresh;
      if (!reused) shared.set(key, runs);
      const ordered = contenderNames.flatMap((name) => budgets.flatMap((budget) => runs.filter((run) => run.contender === name && run.budget === budget)));
      report.replay.push(...replayRows(ordered, rule));
      report.lengths.push(...lengthRows(ordered, rule, budgets[0]!));
      if (rule === rules[0]) {
        report.turns = turnRows(ordered, budgets[0]!);
      }
    }
    report.recommendation = recommend(
      report.replay,
      budgets,
      rules.map((rule) => rule.name),
    );
    // Added latency, warm, on the longest conversation, for the first rule's model at the first budget.
    process.stderr.write('timing warm requests on the longest conversation…\n');
    report.latency = await measureLatency(conversations, await makeContenders(rules[0]!.name), budgets[0]!, rules[0]!.name, rules[0]!.name);
  }
  if (modes.has('qa')) {
    const model = rules[0]!.name;
    const counter = await createCompactor().tokenCounter(model);
    const idealised = [noCompaction(), ...presets.map((preset) => presetContender(preset, withOptions))];
    if (flags.peers) idealised.splice(presets.includes('truncate') ? 2 : 1, 0, await trimMessagesContender(counter));
    const qaOptions = { budgets: qaBudgets, model, counter, progress: flags.progress, ...(limit === undefined ? {} : { limit }) };
    report.qa = await runQa(conversations, idealised, qaOptions, violations);
  }
  report.disqualified = [...new Set(violations.map((violation) => `${violation.contender}@${violation.budget} (${violation.mode})`))];

  process.stdout.write(`${consoleReport(report)}\n`);
  const write = (file: string, text: string) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    process.stderr.write(`wrote ${file}\n`);
  };
  if (flags.json) write(flags.json, `${JSON.stringify(report, null, 2)}\n`);
  if (flags.md) write(flags.md, `${markdownReport(report)}\n`);
  if (flags.html) write(flags.html, await htmlReport(report));
}

/** What `run` writes on stdout, captured (and echoed) so `--md FILE` can keep it. */
async function captureStdout(run: () => Promise<void>): Promise<string> {
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return write(chunk, ...(rest as []));
  }) as typeof process.stdout.write;
  try {
    await run();
  } finally {
    process.stdout.write = write;
  }
  return chunks.join('');
}

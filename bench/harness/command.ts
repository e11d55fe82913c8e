import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createCompactor } from '../../src/core/compactor.js';
import { CompactorError, invalidOption } from '../../src/core/errors.js';
import { benchRoot } from '../paths.js';
import { presetNames } from '../../src/core/presets.js';
import { noCompaction, presetContender, trimMessagesContender, type Contender } from './contenders.js';
import { loadPrices, priceFor, type CacheRule } from './cost.js';
import { loadDataset, type BenchConversation, type DatasetKind } from './loaders.js';
import { consoleReport, htmlReport, markdownReport, type BenchReport } from './report.js';
import { runQa, runReplay, type Violation } from './run.js';
import { machine } from './stats.js';

export interface BenchFlags {
  data?: string[];
  mode: string;
  budgets: string;
  replayBudget: string;
  presets?: string;
  peers: boolean;
  model: string;
  prices?: string;
  cacheRule?: string;
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

function numbers(option: string, text: string): number[] {
  const values = text.split(',').map((value) => Number(value.trim()));
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value < 1))
    invalidOption(option, 'a comma-separated list of whole numbers >= 1', text);
  return values;
}

export async function benchCommand(flags: BenchFlags): Promise<void> {
  const modes = new Set(flags.mode.split(',').map((mode) => mode.trim()));
  for (const mode of modes) if (mode !== 'qa' && mode !== 'replay') invalidOption('mode', '"qa", "replay" or "qa,replay"', flags.mode);
  const budgets = numbers('budgets', flags.budgets);
  const [replayBudget] = numbers('replay-budget', flags.replayBudget);
  const limit = flags.limit === undefined ? undefined : numbers('limit', flags.limit)[0];
  const presets = flags.presets === undefined ? presetNames() : flags.presets.split(',').map((name) => name.trim());
  for (const preset of presets) if (!presetNames().includes(preset)) invalidOption('presets', `names from ${presetNames().join(', ')}`, preset);
  const prices = loadPrices(flags.prices);
  const price = priceFor(prices, flags.model);
  const cacheRule = (flags.cacheRule ?? price.cacheRule ?? 'openai') as CacheRule;
  if (!['openai', 'anthropic', 'none'].includes(cacheRule)) invalidOption('cache-rule', '"openai", "anthropic" or "none"', flags.cacheRule);

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

  const counter = await createCompactor().tokenCounter(flags.model);
  const contenders: Contender[] = [noCompaction(), ...presets.map(presetContender)];
  if (flags.peers) contenders.splice(presets.includes('truncate') ? 2 : 1, 0, await trimMessagesContender(counter));
  const violations: Violation[] = [];
  const report: BenchReport = {
    meta: {
      machine: machine(),
      model: flags.model,
      budgets,
      replayBudget: replayBudget!,
      cacheRule,
      price: { input: price.input, cachedInput: price.cachedInput, output: price.output, source: price.source, asOf: price.asOf },
      data: dataNames,
      contenders: contenders.map((contender) => contender.name),
      command: `context-compactor bench ${process.argv.slice(3).join(' ')}`.trim(),
    },
    violations,
    disqualified: [],
    qa: [],
    replay: [],
    turns: [],
  };
  if (modes.has('qa')) {
    const qaOptions = { budgets, model: flags.model, counter, progress: flags.progress, ...(limit === undefined ? {} : { limit }) };
    report.qa = await runQa(conversations, contenders, qaOptions, violations);
  }
  if (modes.has('replay')) {
    const replay = await runReplay(
      conversations,
      contenders,
      { budget: replayBudget!, model: flags.model, counter, price, cacheRule, progress: flags.progress },
      violations,
    );
    report.replay = replay.rows;
    report.turns = replay.turns;
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

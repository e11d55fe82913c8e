import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCompactor, type CompactorOptions } from '../compactor.js';
import { CompactorError } from '../errors.js';
import { DEFAULT_PRESET, presetNames } from '../presets.js';
import { createRouteTable, loadConfig, type RouteTable } from '../routes.js';
import { runDemo } from './demo.js';
import { benchCommand } from '../bench/command.js';
import { cacheEvalCommand } from './cache-eval.js';
import { serveCommand } from './serve.js';
import { inputLines, parseJson, readInput, write } from './io.js';
import { packageRoot } from '../paths.js';

/** Model assumed by the CLI for requests that name none. */
export const CLI_DEFAULT_MODEL = 'gpt-4o';
const MAX_INPUT_BYTES = 64 * 1024 * 1024;

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a whole number >= 1');
  return parsed;
}

function fraction(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < -1 || parsed > 1) throw new InvalidArgumentError('must be a number from -1 to 1');
  return parsed;
}

interface CompactFlags {
  budget?: number;
  reserve?: number;
  model?: string;
  preset?: string;
  config?: string;
  route?: string;
  stats?: boolean;
  batch?: boolean;
  pretty?: boolean;
  onBudgetUnreachable?: 'error' | 'pass-through';
  embedDeadline?: number;
}

/** The CLI waits for embeddings and summaries (offline work favours quality over latency); servers default to 250 ms and background summaries. */
export const CLI_EMBED_DEADLINE_MS = 60_000;

async function buildTable(flags: CompactFlags): Promise<RouteTable> {
  const overrides: CompactorOptions = { defaultModel: CLI_DEFAULT_MODEL };
  if (flags.budget !== undefined) overrides.maxInputTokens = flags.budget;
  if (flags.reserve !== undefined) overrides.reserveOutputTokens = flags.reserve;
  if (flags.preset !== undefined) overrides.strategy = flags.preset;
  if (flags.onBudgetUnreachable !== undefined) overrides.onBudgetUnreachable = flags.onBudgetUnreachable;
  // The embed deadline: a flag wins, then the config file, then the CLI's own default.
  const deadline = (options: CompactorOptions): CompactorOptions => {
    const relevance = options.presetOptions?.relevance ?? {};
    const embedDeadlineMs = flags.embedDeadline ?? relevance.embedDeadlineMs ?? CLI_EMBED_DEADLINE_MS;
    const summarize = options.presetOptions?.summarize ?? {};
    return {
      ...options,
      presetOptions: {
        ...options.presetOptions,
        relevance: { awaitDocuments: true, ...relevance, embedDeadlineMs },
        // One-shot CLI runs have no next turn to use background summaries: make them inline.
        summarize: { mode: 'inline', inlineDeadlineMs: embedDeadlineMs, ...summarize },
      },
    };
  };
  if (!flags.config) return createRouteTable({ defaults: deadline(overrides) });
  const config = await loadConfig(flags.config);
  // Flags given on the command line win over the config file, in every route.
  return createRouteTable({
    defaults: deadline({ ...config.defaults, ...overrides }),
    routes: (config.routes ?? []).map((rule) => {
      const options = deadline({ ...rule.options, ...overrides });
      if (flags.preset === undefined && rule.preset !== undefined) options.strategy = rule.preset;
      return { ...rule, preset: undefined, options };
    }),
  });
}

function errorLine(error: unknown): { error: { code: string; message: string; pointer?: string } } {
  if (CompactorError.isInstance(error)) {
    const line: { code: string; message: string; pointer?: string } = { code: error.code, message: error.message };
    if (error.pointer) line.pointer = error.pointer;
    return { error: line };
  }
  return { error: { code: 'internal', message: error instanceof Error ? error.message : String(error) } };
}

async function compactCommand(file: string | undefined, flags: CompactFlags): Promise<void> {
  const table = await buildTable(flags);
  const compactOne = async (body: unknown) => {
    const model = typeof (body as { model?: unknown } | null)?.model === 'string' ? (body as { model: string }).model : undefined;
    const compactor = table.select({ path: flags.route, model: flags.model ?? model });
    const options = flags.model === undefined ? { route: flags.route } : { route: flags.route, model: flags.model };
    return compactor.compact(body as object, options);
  };
  if (!flags.batch) {
    const text = await readInput(file, MAX_INPUT_BYTES);
    const { request, stats } = await compactOne(parseJson(text));
    await write(process.stdout, `${JSON.stringify(request, null, flags.pretty ? 2 : undefined)}\n`);
    if (flags.stats) process.stderr.write(`${JSON.stringify(stats)}\n`);
    return;
  }
  const progress = process.stderr.isTTY && !flags.stats;
  let count = 0;
  let failed = 0;
  for await (const line of inputLines(file)) {
    if (line.trim().length === 0) continue;
    count++;
    try {
      const { request, stats } = await compactOne(parseJson(line));
      await write(process.stdout, `${JSON.stringify(request)}\n`);
      if (flags.stats) process.stderr.write(`${JSON.stringify(stats)}\n`);
    } catch (error) {
      failed++;
      if (CompactorError.isInstance(error) && error.code === 'options.invalid') throw error;
      await write(process.stdout, `${JSON.stringify(errorLine(error))}\n`);
      if (flags.stats) process.stderr.write(`${JSON.stringify(errorLine(error))}\n`);
    }
    if (progress && count % 100 === 0) process.stderr.write(`\rcompacted ${count} requests (${failed} failed)`);
  }
  if (progress) process.stderr.write(`\rcompacted ${count} requests (${failed} failed)\n`);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('context-compactor')
    .description('Shrink multi-turn LLM chat histories to a token budget.')
    .version((JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version)
    .exitOverride()
    .configureOutput({ outputError: (text, writeError) => writeError(text.split('\n')[0]! + '\n') });

  program
    .command('compact')
    .description('Compact a chat-completions (or Anthropic Messages) request read from FILE or stdin; write it to stdout.')
    .argument('[file]', 'request JSON (or JSON Lines with --batch); - or omitted for stdin')
    .option('--budget <tokens>', 'max prompt tokens (default: the model window minus the reply reserve)', integer)
    .option('--reserve <tokens>', 'tokens reserved for the reply when the budget comes from the model window', integer)
    .option('--model <name>', `count and budget for this model (default: the request's model, else ${CLI_DEFAULT_MODEL})`)
    .option('--preset <name>', `compaction preset: ${presetNames().join(', ')} (default: ${DEFAULT_PRESET})`)
    .option('--config <file>', 'JSON config: { defaults, routes: [{ path, model, preset, options }] }')
    .option('--route <path>', 'route path used to pick a rule from --config')
    .addOption(new Option('--on-budget-unreachable <mode>', 'when protected messages alone exceed the budget').choices(['error', 'pass-through']))
    .option('--embed-deadline <ms>', `ms to wait for embeddings before relevance falls back to BM25 (default ${CLI_EMBED_DEADLINE_MS})`, integer)
    .option('--stats', 'write stats JSON to stderr, one line per request')
    .option('--batch', 'JSON Lines in and out, one request per line; a bad line yields {"error":{...}} and the batch goes on')
    .option('--pretty', 'indent the output JSON (single request only)')
    .action(compactCommand);

  program
    .command('demo')
    .description('Compact the shipped LoCoMo conversations at several budgets and print tokens before and after.')
    .option('--budgets <list>', 'comma-separated budgets', '1000,2000,4000')
    .option('--preset <name>', 'compaction preset', DEFAULT_PRESET)
    .action(runDemo);

  program
    .command('bench')
    .description('Replay transcripts and score evidence retention, tokens, cost and latency, side by side with peers.')
    .option('--data <spec...>', 'data files, each [locomo|mtbench101|topical-chat|jsonl:]FILE (default: the data shipped in bench/data)')
    .option('--mode <list>', 'qa, replay, or both', 'qa,replay')
    .option('--budgets <list>', 'QA budgets', '1000,2000,4000,8000')
    .option('--replay-budget <tokens>', 'budget for replay mode', '2000')
    .option('--presets <list>', `presets to compare (default: all: ${presetNames().join(', ')})`)
    .option('--no-peers', 'skip LangChain trimMessages')
    .option('--model <name>', 'model for counting and prices', 'gpt-4o')
    .option('--prices <file>', 'price table JSON (default: bench/prices.json)')
    .addOption(new Option('--cache-rule <rule>', "prompt-cache billing rule (default: the model's)").choices(['openai', 'anthropic', 'none']))
    .option('--swap-roles', 'LoCoMo: speaker B as the user')
    .option('--limit <n>', 'QA items per conversation (evenly spread), for quick runs')
    .option('--json <file>', 'write the full report as JSON')
    .option('--md <file>', 'write a Markdown report')
    .option('--html <file>', 'write a self-contained HTML report with charts')
    .option('--no-progress', 'no progress bar on stderr')
    .action(benchCommand);

  program
    .command('serve')
    .description('run the OpenAI-compatible (and Anthropic Messages) proxy until SIGTERM')
    .option('--config <file>', 'JSON config: { defaults, routes, proxy: { upstream, anthropicUpstream, port, host, maxBodyBytes, upstreamTimeoutMs, cache } }')
    .option('--port <n>', 'port (default 8787)', integer)
    .option('--host <address>', 'address to bind (default 127.0.0.1)')
    .option('--upstream <url>', 'OpenAI-compatible origin (default: OPENAI_BASE_URL, else https://api.openai.com)')
    .option('--anthropic-upstream <url>', 'Anthropic origin (default https://api.anthropic.com)')
    .option('--budget <tokens>', 'max prompt tokens (default 8000)', integer)
    .option('--preset <name>', `compaction preset: ${presetNames().join(', ')} (default: relevance)`)
    .option('--cache <store>', 'response cache: memory, redis or off (default memory)')
    .option('--redis-url <url>', 'Redis URL for --cache redis (default: REDIS_URL)')
    .action(serveCommand);

  program
    .command('cache-eval')
    .description('measure the semantic cache on labelled pairs: every a is cached, every b is queried')
    .requiredOption('--pairs <file>', 'JSON Lines of {"a", "b", "label": "hit" | "hard_miss" | "miss"}')
    .option('--threshold <score>', 'verifier score needed for a hit (default: the shipped default)', fraction)
    .option('--sweep', 'a table over a grid of thresholds')
    .option('--json', 'print one JSON object (an array with --sweep)')
    .option('--embedder <name>', 'use-lite, openai (OPENAI_API_KEY, --embedder-url) or hash (a test fake)', 'use-lite')
    .option('--embedder-url <url>', 'base URL of an OpenAI-compatible embeddings API')
    .option('--embedder-model <name>', 'embedding model for --embedder openai')
    .option('--verifier <name>', 'default (the shipped logistic verifier) or cosine', 'default')
    .option('--store <name>', 'memory or redis', 'memory')
    .option('--redis-url <url>', 'Redis URL for --store redis (default: REDIS_URL)')
    .option('--split <name>', 'all, or the train/test side of the split by question that the shipped verifier used', 'all')
    .option('--limit <n>', 'only the first n pairs', integer)
    .option('--exclude-repeats', 'leave out pairs whose b is itself one of the cached questions (the semantic layer alone)')
    .option('--no-progress', 'no progress bar on stderr')
    .action(cacheEvalCommand);

  return program;
}

/** Run the CLI. Usage and input errors exit 2 with one line and no stack trace. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      return 2;
    }
    if (CompactorError.isInstance(error)) {
      process.stderr.write(`context-compactor: ${error.code}: ${error.message}\n`);
      return error.status >= 500 && error.code !== 'options.invalid' ? 1 : 2;
    }
    process.stderr.write(`context-compactor: internal: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

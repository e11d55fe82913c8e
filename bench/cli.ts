import { Command, InvalidArgumentError } from 'commander';
import { integer, runProgram } from '../src/cli/main.js';
import { DEFAULT_PRESET, presetNames } from '../strategies/presets.js';
import { cacheEvalCommand } from './cache-eval/command.js';
import { runDemo } from './demo.js';
import { benchCommand } from './harness/command.js';

/**
 * The repository's own commands: `bench`, `demo` and `cache-eval`. They read bench/data, which
 * ships with the repository and not with the npm package, so the package's CLI hands them over
 * here only when this file is present (bin/context-compactor.js).
 */

function fraction(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < -1 || parsed > 1) throw new InvalidArgumentError('must be a number from -1 to 1');
  return parsed;
}

export function buildBenchProgram(): Command {
  const program = new Command();
  program
    .name('context-compactor')
    .exitOverride()
    .configureOutput({ outputError: (text, writeError) => writeError(`${text.split('\n')[0]!}\n`) });

  program
    .command('demo')
    .description('Compact the shipped LoCoMo conversations at several budgets and print tokens before and after.')
    .option('--budgets <list>', 'comma-separated budgets', '1000,2000,4000')
    .option('--preset <name>', 'compaction preset', DEFAULT_PRESET)
    .option('--await', 'the idealised path: wait for every embedding and summary (by default it runs as a server does)')
    .action(runDemo);

  program
    .command('bench')
    .description('Replay transcripts on the path a server runs; bill them under several price rules; score retention, side by side with baselines.')
    .option(
      '--suite <name>',
      'chat (transcripts) or agents (the agent runs: refusals, validity, values kept, bills under six rules, peers; see bench/agent-suite.ts)',
      'chat',
    )
    .option('--data <spec...>', 'data files, each [locomo|mtbench101|topical-chat|jsonl:]FILE (default: the data shipped in bench/data)')
    .option('--mode <list>', 'replay (bills, live retention, cold requests), qa (idealised retention, every turn embedded first), or both', 'replay')
    .option('--budgets <list>', 'replay budgets', '2000,4000,8000')
    .option('--qa-budgets <list>', 'budgets of the idealised QA mode', '1000,2000,4000,8000')
    .option('--rules <list>', 'price rules: models of the price table, each billed with its prompt-cache rule', 'gpt-4o,gpt-5,claude-sonnet-4')
    .option('--presets <list>', `presets to compare (default: all: ${presetNames().join(', ')})`)
    .option('--no-peers', 'skip LangChain trimMessages')
    .option('--await', 'replay on the idealised path (embeddings and summaries awaited) instead of the live one')
    .option('--cold-turns <n>', 'requests per conversation met by a fresh process', '3')
    .option('--prices <file>', 'price table JSON { "models": { name: { input, cachedInput, cacheWrite?, output, cacheRule } } } (default: the shipped table)')
    .option('--preset-options <json>', 'options per preset, as createCompactor({ presetOptions }), e.g. \'{"cacheAware":{"excerptShare":0.1}}\'')
    .option('--swap-roles', 'LoCoMo: speaker B as the user')
    .option('--limit <n>', 'QA items per conversation (evenly spread), for quick runs')
    .option('--json <file>', 'write the full report as JSON')
    .option('--md <file>', 'write a Markdown report')
    .option('--html <file>', 'write a self-contained HTML report with charts')
    .option('--no-progress', 'no progress bar on stderr')
    .action(benchCommand);

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

/** Run one of the bench commands. */
export function main(argv: string[]): Promise<number> {
  return runProgram(buildBenchProgram(), argv);
}

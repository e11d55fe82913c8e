import { Command, InvalidArgumentError, Option } from 'commander';
import { integer, runProgram } from '../src/cli/main.js';
import { DEFAULT_PRESET, presetNames } from '../src/core/presets.js';
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

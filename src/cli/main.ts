import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompactorError } from '../core/errors.js';
import { DEFAULT_PRESET, presetNames } from '../../strategies/presets.js';
import { CLI_DEFAULT_MODEL, CLI_EMBED_TIMEOUT_MS, compactCommand } from './compact.js';
import { packageRoot } from './package-root.js';
import { serveCommand } from './serve.js';

/** Commands that live in the repository's bench/ (they read bench/data, which the package does not ship). */
export const BENCH_COMMANDS: readonly string[] = ['bench', 'demo', 'cache-eval'];

/** A whole number >= 1 in decimal digits (not `0x10`, `1e3` or ` 5`), for commander. */
export function integer(value: string): number {
  const parsed = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a whole number >= 1');
  return parsed;
}

/** A preset's name. */
export function preset(value: string): string {
  if (!presetNames().includes(value)) throw new InvalidArgumentError(`must be one of ${presetNames().join(', ')}`);
  return value;
}

/** A TCP port, 1 to 65535. */
export function port(value: string): number {
  const parsed = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65535) throw new InvalidArgumentError('must be a port from 1 to 65535');
  return parsed;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('context-compactor')
    .description('Shrink multi-turn LLM chat histories to a token budget.')
    .version((JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version)
    .exitOverride()
    .configureOutput({ outputError: (text, writeError) => writeError(`${text.split('\n')[0]!}\n`) })
    .addHelpText('after', `\nFrom a clone of the repository: ${BENCH_COMMANDS.join(', ')} (see bench/README.md).`);

  program
    .command('compact')
    .description('Compact a chat-completions (or Anthropic Messages) request read from FILE or stdin; write it to stdout.')
    .argument('[file]', 'request JSON (or JSON Lines with --batch); - or omitted for stdin')
    .option('--budget <tokens>', 'max prompt tokens (default: the model window minus the reply reserve)', integer)
    .option('--reserve <tokens>', 'tokens reserved for the reply when the budget comes from the model window', integer)
    .option('--model <name>', `count and budget for this model (default: the request's model, else ${CLI_DEFAULT_MODEL})`)
    .option('--preset <name>', `compaction preset: ${presetNames().join(', ')} (default: ${DEFAULT_PRESET})`, preset)
    .option('--config <file>', 'JSON config: { defaults, routes: [{ path, model, strategy, options }] }')
    .option('--route <path>', 'route path used to pick a rule from --config')
    .addOption(new Option('--on-budget-unreachable <mode>', 'when protected messages alone exceed the budget').choices(['error', 'pass-through']))
    .option(
      '--await',
      `the idealised path: wait up to --embed-timeout (default ${CLI_EMBED_TIMEOUT_MS}) for every turn's embedding and every summary; by default the CLI runs as a server does (250 ms deadlines, background work)`,
    )
    .option('--embed-timeout <ms>', 'ms to wait for embeddings before scoring falls back to BM25 (default: 250, or 60000 with --await)', integer)
    .option('--stats', 'write stats JSON to stderr, one line per request')
    .option('--batch', 'JSON Lines in and out, one request per line; a bad line yields {"error":{...}} and the batch goes on')
    .option('--pretty', 'indent the output JSON (single request only)')
    .action(compactCommand);

  program
    .command('serve')
    .description('run the OpenAI-compatible (and Anthropic Messages) proxy until SIGTERM')
    .option('--config <file>', 'JSON config: { defaults, routes, proxy: { upstream, anthropicUpstream, port, host, maxBodyBytes, upstreamTimeoutMs, cache } }')
    .option('--port <n>', 'port (default 8787)', port)
    .option('--host <address>', 'address to bind (default 127.0.0.1)')
    .option('--upstream <url>', 'OpenAI-compatible origin (default: OPENAI_BASE_URL, else https://api.openai.com)')
    .option('--anthropic-upstream <url>', 'Anthropic origin (default https://api.anthropic.com)')
    .option('--budget <tokens>', 'max prompt tokens (default 8000)', integer)
    .option('--preset <name>', `compaction preset: ${presetNames().join(', ')} (default: ${DEFAULT_PRESET})`, preset)
    .option('--cache <store>', 'response cache: memory, redis or off (default memory)')
    .option('--redis-url <url>', 'Redis URL for --cache redis (default: REDIS_URL)')
    .option(
      '--no-cache-hints',
      "add no provider cache hints (by default: Anthropic cache_control breakpoints and OpenAI's prompt_cache_key, for api.anthropic.com and api.openai.com only)",
    )
    .action(serveCommand);

  return program;
}

export interface MainOptions {
  /** Loads the repository's bench commands (bin/context-compactor.js passes it); absent or failing, they explain where to get them. */
  bench?: () => Promise<{ main(argv: string[]): Promise<number> }>;
}

/** Run the CLI. Usage and input errors exit 2 with one line and no stack trace. */
export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  // A reader that closed the pipe (`compact --batch | head`) wants no more: end quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw error;
  });
  const command = argv[2];
  if (command === undefined) {
    buildProgram().outputHelp({ error: true });
    return 1;
  }
  if (command !== undefined && BENCH_COMMANDS.includes(command)) {
    const bench = await options.bench?.().catch(() => undefined);
    if (bench) return bench.main(argv);
    process.stderr.write(
      `context-compactor: ${command} runs from a clone of the repository: the bench harness and its data (bench/) do not ship in the npm package. Clone the repository, then \`npm ci && npm run ${command === 'bench' ? 'bench' : command === 'demo' ? 'demo' : 'build && node bin/context-compactor.js cache-eval'}\`.\n`,
    );
    return 2;
  }
  return runProgram(buildProgram(), argv);
}

/** Parse and run a commander program: usage and input errors exit 2 with one line and no stack trace, bugs exit 1. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
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

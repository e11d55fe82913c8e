import { defaultRuntime } from '../runtime.js';
import type { CompactorOptions } from '../compose/options.js';
import { CompactorError } from '../core/errors.js';
import { createRouteTable, loadConfig, type RouteTable } from '../compose/routes.js';
import { inputLines, parseJson, readInput, write } from './io.js';

/** Model assumed by the CLI for requests that name none. */
export const CLI_DEFAULT_MODEL = 'gpt-4o';
const MAX_INPUT_BYTES = 64 * 1024 * 1024;

export interface CompactFlags {
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
  embedTimeout?: number;
  await?: boolean;
}

/**
 * With `--await`, the CLI waits this long for embeddings and summaries (the idealised path:
 * every turn embedded, every summary made). Without it, it runs as a server does: 250 ms
 * deadlines, background embeddings and summaries, so its output is what a deployed server sends.
 */
export const CLI_EMBED_TIMEOUT_MS = 60_000;

async function buildTable(flags: CompactFlags): Promise<RouteTable> {
  const overrides: CompactorOptions = { defaultModel: CLI_DEFAULT_MODEL };
  if (flags.budget !== undefined) overrides.maxInputTokens = flags.budget;
  if (flags.reserve !== undefined) overrides.reserveOutputTokens = flags.reserve;
  if (flags.preset !== undefined) overrides.strategy = flags.preset;
  if (flags.onBudgetUnreachable !== undefined) overrides.onBudgetUnreachable = flags.onBudgetUnreachable;
  // The live path by default, as a server runs; `--await` for the idealised one. The embedding
  // timeout: a flag wins, then the config file, then the path's default.
  const deadline = (options: CompactorOptions): CompactorOptions => {
    const relevance = options.presetOptions?.relevance ?? {};
    const cacheAware = options.presetOptions?.['cache-aware'] ?? {};
    const summarize = options.presetOptions?.summarize ?? {};
    if (!flags.await) {
      if (flags.embedTimeout === undefined) return options;
      const embedTimeoutMs = flags.embedTimeout;
      return {
        ...options,
        presetOptions: { ...options.presetOptions, relevance: { ...relevance, embedTimeoutMs }, 'cache-aware': { ...cacheAware, embedTimeoutMs } },
      };
    }
    const embedTimeoutMs = flags.embedTimeout ?? relevance.embedTimeoutMs ?? CLI_EMBED_TIMEOUT_MS;
    return {
      ...options,
      presetOptions: {
        ...options.presetOptions,
        relevance: { awaitDocuments: true, ...relevance, embedTimeoutMs },
        'cache-aware': { awaitDocuments: true, ...cacheAware, embedTimeoutMs: flags.embedTimeout ?? cacheAware.embedTimeoutMs ?? CLI_EMBED_TIMEOUT_MS },
        summarize: { mode: 'inline', inlineTimeoutMs: embedTimeoutMs, ...summarize },
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
      const shorthand = rule.strategy ?? rule.preset;
      if (flags.preset === undefined && shorthand !== undefined) options.strategy = shorthand;
      return { ...rule, strategy: undefined, preset: undefined, options };
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

export async function compactCommand(file: string | undefined, flags: CompactFlags): Promise<void> {
  try {
    await compactAll(file, flags);
  } finally {
    // One-shot work: the history embedding a compaction starts in the background would keep the
    // process alive for seconds after its output is written, for nothing.
    await defaultRuntime().close();
  }
}

async function compactAll(file: string | undefined, flags: CompactFlags): Promise<void> {
  const table = await buildTable(flags);
  const compactOne = async (body: unknown) => {
    const model = typeof (body as { model?: unknown } | null)?.model === 'string' ? (body as { model: string }).model : undefined;
    const compactor = table.select({ path: flags.route, model: flags.model ?? model });
    const options = flags.model === undefined ? { route: flags.route } : { route: flags.route, model: flags.model };
    const result = await compactor.compact(body as object, options);
    // A config file cannot hold a response cache, so every result is a compaction.
    if (result.kind !== 'compacted') throw new CompactorError('internal', 'the CLI has no response cache');
    return result;
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
  // Every line has its answer or its error in the output; the exit status still says some failed.
  if (failed > 0) throw new CompactorError('input.invalid', `${failed} of ${count} lines failed; their errors are in the output`, { pointer: 'batch' });
}

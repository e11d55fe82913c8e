import { readFile } from 'node:fs/promises';
import { CompactorError, invalidOption, rejectUnknownKeys, underPath } from '../core/errors.js';
import { createCompactor, type Compactor } from './compactor.js';
import type { CompactorOptions } from './options.js';

/** Options in a JSON config file: everything but functions. */
export type JsonCompactorOptions = Omit<CompactorOptions, 'strategy' | 'tokenizer' | 'clock'> & {
  /** A preset name. */
  strategy?: string;
  tokenizer?: 'js-tiktoken' | 'gpt-tokenizer';
};

export interface RouteRule {
  /** The rule's name: the proxy's `/metrics` label for the requests it matches. @example "support" */
  name?: string;
  /** Path pattern; `*` matches any run of characters. Omitted: any path. @example "/v1/chat/*" */
  path?: string;
  /** Model pattern; `*` matches any run of characters. Omitted: any model. @example "gpt-4o*" */
  model?: string;
  /** Options for this route, on top of the table's defaults. */
  options?: CompactorOptions;
  /** Shorthand for `options.strategy`: a preset name. */
  strategy?: string;
  /** @deprecated Use `strategy` (the same shorthand); removed in the next major. */
  preset?: string;
}

export interface RouteTableOptions {
  /** Options every route starts from. */
  defaults?: CompactorOptions;
  /** Rules, first match wins. A request no rule matches uses `defaults`. */
  routes?: RouteRule[];
}

export interface RouteTable {
  /** The compactor for a path and model (compactors are built once, at construction). */
  select(where: { path?: string; model?: string }): Compactor;
  /** The name of the rule that matches, if it has one (metrics label requests by it). */
  nameOf?(where: { path?: string; model?: string }): string | undefined;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/**
 * Per-route tuning: a table of path and/or model patterns, each with its own compactor.
 *
 * @example
 * const table = createRouteTable({
 *   defaults: { maxInputTokens: 8000 },
 *   routes: [{ path: '/support/*', options: { maxInputTokens: 2000 } }],
 * })
 * app.post('/support/chat', express.json(), compaction(table), handler)
 */
export function createRouteTable(options: RouteTableOptions): RouteTable {
  if (typeof options !== 'object' || options === null) invalidOption('routes', 'an object', options);
  rejectUnknownKeys(options, ['defaults', 'routes']);
  const defaults = options.defaults ?? {};
  const fallback = underPath('defaults.', () => createCompactor(defaults));
  const rules = (options.routes ?? []).map((rule, index) => {
    if (typeof rule !== 'object' || rule === null) invalidOption(`routes[${index}]`, 'an object', rule);
    rejectUnknownKeys(rule, ['name', 'path', 'model', 'options', 'strategy', 'preset'], `routes[${index}]`);
    if (rule.strategy !== undefined && rule.preset !== undefined)
      invalidOption(`routes[${index}].preset`, 'left out when `strategy` is set (they are the same option)', rule.preset);
    if (rule.path !== undefined && typeof rule.path !== 'string') invalidOption(`routes[${index}].path`, 'a string pattern', rule.path);
    if (rule.model !== undefined && typeof rule.model !== 'string') invalidOption(`routes[${index}].model`, 'a string pattern', rule.model);
    if (rule.name !== undefined && (typeof rule.name !== 'string' || !/^[\w.-]{1,64}$/.test(rule.name)))
      invalidOption(`routes[${index}].name`, 'a name of 1 to 64 letters, digits, "_", "." or "-"', rule.name);
    const merged: CompactorOptions = { ...defaults, ...rule.options };
    const shorthand = rule.strategy ?? rule.preset;
    if (shorthand !== undefined) merged.strategy = shorthand;
    let compactor: Compactor;
    try {
      compactor = createCompactor(merged);
    } catch (error) {
      if (CompactorError.isInstance(error) && error.code === 'options.invalid') {
        throw new CompactorError('options.invalid', `routes[${index}]: ${error.message}`, {
          pointer: `routes[${index}].${error.pointer ?? ''}`,
          cause: error,
        });
      }
      throw error;
    }
    return {
      name: rule.name,
      path: rule.path === undefined ? undefined : globToRegExp(rule.path),
      model: rule.model === undefined ? undefined : globToRegExp(rule.model),
      compactor,
    };
  });
  const match = ({ path, model }: { path?: string; model?: string }) =>
    rules.find((rule) => (!rule.path || (path !== undefined && rule.path.test(path))) && (!rule.model || (model !== undefined && rule.model.test(model))));
  return {
    select: (where) => match(where)?.compactor ?? fallback,
    nameOf: (where) => match(where)?.name,
  };
}

/** Give every route without a cache of its own the shared one (the proxy's, or `serve`'s). */
export function withSharedCache(options: RouteTableOptions, cache: CompactorOptions['cache'] | undefined): RouteTableOptions {
  if (!cache) return options;
  return {
    defaults: { ...options.defaults, cache: options.defaults?.cache ?? cache },
    routes: (options.routes ?? []).map((rule) => ({ ...rule, options: { ...rule.options, cache: rule.options?.cache ?? cache } })),
  };
}

export function isRouteTable(value: unknown): value is RouteTable {
  return typeof value === 'object' && value !== null && typeof (value as RouteTable).select === 'function';
}

/** Read a JSON config file (`{ defaults, routes }`) for the CLI and the proxy. */
export async function loadConfig(file: string): Promise<RouteTableOptions> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CompactorError('options.invalid', `config: cannot read ${file}: ${(error as Error).message}`, { pointer: 'config', cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CompactorError('options.invalid', `config: ${file} is not valid JSON: ${(error as Error).message}`, { pointer: 'config', cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) invalidOption('config', 'a JSON object { defaults, routes }', parsed);
  rejectUnknownKeys(parsed, ['defaults', 'routes', 'proxy']);
  const defaults = (parsed as { defaults?: unknown }).defaults;
  if (defaults !== undefined && (typeof defaults !== 'object' || defaults === null || Array.isArray(defaults)))
    invalidOption('defaults', 'an object', defaults);
  const config = parsed as RouteTableOptions;
  if (config.routes !== undefined && !Array.isArray(config.routes)) invalidOption('config.routes', 'an array', config.routes);
  return config;
}

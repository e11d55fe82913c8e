import { invalidOption, rejectUnknownKeys } from './errors.js';

/**
 * The one options helper every public factory and adapter validates with: the option names, one
 * defaults object, a rule per option (type and range), and unknown keys refused with a "did you
 * mean". Each definition registers itself, so the defaults test walks every factory there is.
 */

/** What an option's value must be. `invalid` is a value the rule refuses (the registry's tests send it). */
export interface Rule {
  readonly expected: string;
  test(value: unknown): boolean;
  readonly invalid: unknown;
}

const rule = (expected: string, test: (value: unknown) => boolean, invalid: unknown): Rule => ({ expected, test, invalid });

export const rules = {
  /** An integer in [min, max]. */
  int: (min: number, max = Number.POSITIVE_INFINITY): Rule =>
    rule(
      max === Number.POSITIVE_INFINITY ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`,
      (value) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max,
      min - 1,
    ),
  /** A finite number in a range; `open` makes either end exclusive. */
  number: (min: number, max: number, open: { min?: boolean; max?: boolean } = {}): Rule =>
    rule(
      `a number in ${open.min ? '(' : '['}${min}, ${max}${open.max ? ')' : ']'}`,
      (value) => typeof value === 'number' && Number.isFinite(value) && (open.min ? value > min : value >= min) && (open.max ? value < max : value <= max),
      Number.NaN,
    ),
  boolean: rule('a boolean', (value) => typeof value === 'boolean', 'yes'),
  string: rule('a non-empty string', (value) => typeof value === 'string' && value.length > 0, 42),
  function: rule('a function', (value) => typeof value === 'function', 42),
  object: rule('an object', (value) => typeof value === 'object' && value !== null && !Array.isArray(value), 42),
  /** A RegExp, or null to turn a feature off. */
  regExpOrNull: rule('a RegExp or null', (value) => value === null || value instanceof RegExp, 'x'),
  /** One of the given literal values. */
  oneOf: (...values: readonly unknown[]): Rule =>
    rule(`one of ${values.map((value) => JSON.stringify(value)).join(', ')}`, (value) => values.includes(value), '__not-a-choice__'),
  /** Either of two rules. */
  either: (a: Rule, b: Rule): Rule => rule(`${a.expected} or ${b.expected}`, (value) => a.test(value) || b.test(value), Symbol('invalid')),
  /** Checked by the factory itself (an object of its own shape, a store, an embedder). */
  custom: (expected: string): Rule => rule(expected, () => true, undefined),
};

/** Rules for options a factory checks itself, by name (`createCompactor`, whose options are objects of their own shapes). */
export function checkedByFactory<T extends object>(
  names: readonly (keyof T)[],
  expected = 'see the option’s documentation',
): { [K in keyof Required<T>]: Rule } {
  return Object.fromEntries(names.map((name) => [name, rules.custom(expected)])) as { [K in keyof Required<T>]: Rule };
}

/** Options once parsed: those with a default are always set, the others may be undefined. */
export type Settings<T, D> = { [K in keyof T]-?: K extends keyof D ? Exclude<T[K], undefined> : T[K] | undefined };

/** A factory's options, as registered. */
export interface OptionsDefinition<T extends object = object, D extends Partial<T> = Partial<T>> {
  /** The factory's name as users call it (`truncate`, `memoryStore`, `express compaction`). */
  readonly factory: string;
  /** Every option name. */
  readonly names: readonly string[];
  readonly defaults: Readonly<D>;
  readonly rules: Readonly<Record<string, Rule>>;
  /** Where the options are documented: [file, interface] pairs, the first one's `@default`s winning. */
  readonly docs: readonly (readonly [file: string, name: string])[];
  /**
   * Validate options once: an object (or undefined), no unknown key, each given value passing its
   * rule. Returns the defaults with the given values over them (a value of `undefined` is absent).
   * Errors are `options.invalid` naming the option under `path`.
   */
  parse(options: T | undefined, path?: string): Settings<T, D>;
}

const registry = new Map<string, OptionsDefinition>();

/** Every factory's options definition, by factory name. */
export const OPTION_REGISTRY: ReadonlyMap<string, OptionsDefinition> = registry;

export function defineOptions<T extends object, D extends Partial<T> = Partial<T>>(spec: {
  factory: string;
  defaults: D;
  rules: { [K in keyof Required<T>]: Rule };
  docs: readonly (readonly [string, string])[];
}): OptionsDefinition<T, D> {
  const names = Object.keys(spec.rules);
  const allRules = spec.rules as Record<string, Rule>;
  const definition: OptionsDefinition<T, D> = {
    factory: spec.factory,
    names,
    defaults: spec.defaults,
    rules: allRules,
    docs: spec.docs,
    parse(options, path = '') {
      const at = (name: string) => (path ? `${path}.${name}` : name);
      if (options === undefined || options === null) return { ...spec.defaults } as unknown as Settings<T, D>;
      if (typeof options !== 'object' || Array.isArray(options)) invalidOption(path || 'options', 'an object', options);
      rejectUnknownKeys(options, names, path);
      const settings: Record<string, unknown> = { ...spec.defaults };
      for (const [name, value] of Object.entries(options)) {
        if (value === undefined) continue;
        const check = allRules[name]!;
        if (!check.test(value)) invalidOption(at(name), check.expected, value);
        settings[name] = value;
      }
      return settings as Settings<T, D>;
    },
  };
  registry.set(spec.factory, definition as unknown as OptionsDefinition);
  return definition;
}

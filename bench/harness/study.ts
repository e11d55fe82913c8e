import { parseArgs } from 'node:util';

type FlagSpec = Record<string, { type: 'boolean' | 'string'; default?: boolean | string }>;
type Flags<S extends FlagSpec> = { [K in keyof S]: S[K]['type'] extends 'boolean' ? boolean : S[K]['default'] extends string ? string : string | undefined };

/**
 * The study scripts' one command runner (`npm run bench:*`). Flags are parsed strictly: an
 * unknown flag or a missing value is an error naming it, with the flags the study takes, and the
 * process exits 2. `--md` (tables as Markdown) is every study's. The child roles some studies
 * fork (`proxy`, `upstream PORT`) are positionals.
 */
export function studyFlags<S extends FlagSpec>(
  study: string,
  spec: S,
  args: readonly string[] = process.argv.slice(2),
): Flags<S> & { md: boolean; positionals: string[] } {
  const options = { md: { type: 'boolean' as const, default: false }, ...spec };
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
    const flags: Record<string, unknown> = { ...values };
    // A boolean flag left out is false, not undefined.
    for (const [name, option] of Object.entries(options)) if (option.type === 'boolean') flags[name] ??= false;
    return { ...(flags as unknown as Flags<S> & { md: boolean }), positionals };
  } catch (error) {
    const known = Object.entries(options)
      .map(([name, option]) => `--${name}${option.type === 'string' ? ' VALUE' : ''}`)
      .join(' ');
    process.stderr.write(`${study}: ${(error as Error).message}\n  flags: ${known}\n`);
    process.exit(2);
  }
}

/**
 * Run a study's `main` and end the process when it is done: exit 0 once its report is printed
 * (a Redis client or a worker kept alive by design must not hold the process), 1 with the error
 * on stderr when it fails.
 */
export function runStudy(study: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${study} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}

// The command-line flags of the bench's commands (cli, profile, uws-scale), read alike: `--` is
// skipped; --help or -h prints the usage on stdout and exits 0; a flag's value is given as
// `--NAME VALUE` or `--NAME=VALUE`; anything else is refused in one line, then the usage, exit 2.

/** The message, a blank line and the usage on stderr; exit code 2. */
export function fail(usage: string, message: string): never {
  console.error(`${message}\n\n${usage}`);
  process.exit(2);
}

export interface FlagSpec {
  /** Printed on stdout for --help or -h, and on stderr after the message of a refusal. */
  usage: string;
  /** The flags that take a value, without their `--`. */
  valued: readonly string[];
  /** The flags that take none, without their `--` (`--NAME=VALUE` is refused for them). */
  booleans?: readonly string[];
  /** Called on each value as it is read (with the flag as given, `--NAME`), before the next argument. */
  check?: (flag: string, value: string) => void;
}

export interface Flags {
  /** The valued flags given, by name without `--`: the last value of each. */
  values: Map<string, string>;
  /** The boolean flags given, by name without `--`. */
  booleans: Set<string>;
}

export function parseFlags(argv: readonly string[], spec: FlagSpec): Flags {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') continue;
    if (arg === '--help' || arg === '-h') {
      console.log(spec.usage);
      process.exit(0);
    }
    if (arg.startsWith('--') && spec.booleans?.includes(arg.slice(2))) {
      booleans.add(arg.slice(2));
      continue;
    }
    const [flag, inline] = arg.split(/=(.*)/s) as [string, string?];
    const name = flag.slice(2);
    if (!flag.startsWith('--') || !spec.valued.includes(name)) fail(spec.usage, `unknown argument "${arg}"`);
    const value = inline ?? argv[++i];
    if (value === undefined) fail(spec.usage, `${flag} needs a value`);
    spec.check?.(flag, value);
    values.set(name, value);
  }
  return { values, booleans };
}

/**
 * How a positive number is read: 'number' is any finite one (Number's syntax: 0.5, 1e3, 0x10),
 * 'integer' such a one that is whole, 'digits' decimal digits only.
 */
export type Positive = 'number' | 'integer' | 'digits';

/** `text`, the value of `flag` (`--NAME`), as a positive number; else a refusal naming the flag. */
export function positive(usage: string, flag: string, text: string, kind: Positive): number {
  const n = Number(text);
  const ok =
    kind === 'digits'
      ? /^\d+$/.test(text) && n > 0
      : Number.isFinite(n) && n > 0 && (kind === 'number' || Number.isInteger(n));
  if (!ok)
    fail(usage, `${flag} must be a positive ${kind === 'number' ? 'number' : 'integer'}, not "${text}"`);
  return n;
}

/** The value of --NAME as a positive number (see `positive`), or `fallback` when it was not given. */
export function positiveFlag(
  usage: string,
  values: ReadonlyMap<string, string>,
  name: string,
  fallback: number,
  kind: Positive,
): number {
  const text = values.get(name);
  return text === undefined ? fallback : positive(usage, `--${name}`, text, kind);
}

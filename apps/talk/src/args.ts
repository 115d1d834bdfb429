/**
 * A small flag parser: `--name value` (or `--name=value`), `--flag`, `--no-flag`; unknown flags are
 * an error that names them (exit code 2). A name in `values` takes one value (the last one given
 * wins); a name in `lists` may be given any number of times, and collects its values in order.
 * `--help` or `-h` prints `usage` on stdout and exits 0.
 */
export function parseArgs(
  argv: readonly string[],
  spec: { values: readonly string[]; flags: readonly string[]; lists?: readonly string[] },
  usage: string,
): { values: Map<string, string>; flags: Map<string, boolean>; lists: Map<string, string[]> } {
  const values = new Map<string, string>();
  const flags = new Map<string, boolean>();
  const lists = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') help(usage);
    const [name, inline] = arg.startsWith('--') ? (arg.slice(2).split(/=(.*)/s) as [string, string?]) : [arg];
    const list = spec.lists?.includes(name) ?? false;
    if (list || spec.values.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) fail(`--${name} needs a value`, usage);
      if (list) lists.set(name, [...(lists.get(name) ?? []), value]);
      else values.set(name, value);
    } else if (spec.flags.includes(name)) flags.set(name, true);
    else if (name.startsWith('no-') && spec.flags.includes(name.slice(3))) flags.set(name.slice(3), false);
    else fail(`unknown argument "${arg}"`, usage);
  }
  return { values, flags, lists };
}

/** Prints `usage` on stdout and exits 0: what `--help` does. */
export function help(usage: string): never {
  console.log(usage);
  process.exit(0);
}

export function fail(message: string, usage?: string): never {
  console.error(usage ? `${message}\n${usage}` : message);
  process.exit(2);
}

/** A service as the command line gives it: digits are a port, anything else a name. */
export function serviceArg(text: string): number | string | null {
  if (text === 'null' || text === 'nil') return null;
  return /^\d+$/.test(text) ? Number(text) : text;
}

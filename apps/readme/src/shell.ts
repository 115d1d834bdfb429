import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from './blocks.js';

interface Manifest {
  name?: string;
  scripts?: Record<string, string>;
  bin?: Record<string, string> | string;
}

function manifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

/** Every workspace package's directory (packages/*, apps/*) by its name. */
function workspacePackages(root: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const group of ['packages', 'apps'])
    for (const entry of readdirSync(join(root, group), { withFileTypes: true })) {
      const dir = join(root, group, entry.name);
      if (entry.isDirectory() && existsSync(join(dir, 'package.json'))) {
        const name = manifest(dir).name;
        if (name) found.set(name, dir);
      }
    }
  return found;
}

/** Splits a command line into words: quotes kept together, `[`/`]` (optional parts) dropped. */
export function words(line: string): string[] {
  const out: string[] = [];
  for (const match of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    const word = match[1] ?? match[2] ?? (match[3] as string).replace(/[[\]]/g, '');
    if (word !== '') out.push(word);
  }
  return out;
}

/** The command lines of a shell block: comments dropped, `\` continuations joined, `$ ` prompts removed. */
export function commandLines(code: string): string[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of code.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line)
      .trim()
      .replace(/^\$\s+/, '')
      .replace(/\s+/g, ' ');
    pending = '';
    if (whole !== '') lines.push(whole);
  }
  return lines;
}

/** The source files of a CLI built to `dist/NAME.js`: the TypeScript files of its `src/` directory. */
function cliSources(root: string, script: string): { files: string[]; text: string } {
  const source = join(root, script.replace(/\/dist\//, '/src/').replace(/\.js$/, '.ts'));
  const dir = dirname(source);
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => name.endsWith('.ts'))
        .map((name) => join(dir, name))
    : [];
  return { files, text: files.map((file) => readFileSync(file, 'utf8')).join('\n') };
}

/**
 * Whether the CLI's parser knows `--flag`: its sources name it, as `'--flag'` or as the bare
 * `'flag'` a table of flags holds (apps/talk's parser); `--no-flag` is the negation of `flag`.
 */
function knowsFlag(text: string, flag: string): boolean {
  const name = flag.replace(/^--/, '').replace(/=.*$/, '');
  const names = name.startsWith('no-') ? [name, name.slice(3)] : [name];
  return names.some((n) =>
    ['"', "'", '`'].some((q) => text.includes(`${q}--${n}${q}`) || text.includes(`${q}${n}${q}`)),
  );
}

/** The last `node PATH` a package script runs: the CLI that gets its arguments. */
function scriptCli(script: string): string | null {
  const runs = [...script.matchAll(/(?:^|&&\s*|;\s*)node\s+(\S+\.m?js)/g)];
  return runs.length > 0 ? ((runs[runs.length - 1] as RegExpMatchArray)[1] as string) : null;
}

/** Path-like words (`packages/bun/dist/index.js`, `bun=bun:packages/...`) must name files that exist. */
function checkPaths(root: string, args: readonly string[], problems: string[]): void {
  for (const arg of args) {
    const path = arg.split(/[=:]/).pop() as string;
    if (/^[\w.-]+(\/[\w.@-]+)+\.(m?js|ts|py|json)$/.test(path) && !existsSync(join(root, path)))
      problems.push(`${path} does not exist`);
  }
}

function checkFlags(
  root: string,
  cli: string,
  args: readonly string[],
  problems: string[],
  what: string,
): void {
  const flags = args.filter((arg) => arg.startsWith('--') && arg !== '--');
  if (flags.length === 0) return;
  const { files, text } = cliSources(root, cli);
  if (files.length === 0) {
    problems.push(`${what}: no sources for ${cli} to find its flags in`);
    return;
  }
  for (const flag of flags)
    if (!knowsFlag(text, flag)) problems.push(`${what}: ${cli} has no flag ${flag.replace(/=.*$/, '')}`);
}

/**
 * Checks one command line without running it: the package scripts it runs exist, the files,
 * binaries and workspace packages it names exist, and its flags are the CLI's. Returns the problems.
 */
export function checkCommand(line: string, root = repoRoot): string[] {
  const problems: string[] = [];
  const [command = '', ...args] = words(line);
  const rootManifest = manifest(root);
  const packages = workspacePackages(root);
  const rootScript = (name: string, rest: readonly string[]) => {
    const script = rootManifest.scripts?.[name];
    if (script === undefined) {
      problems.push(`the root package.json has no script "${name}"`);
      return;
    }
    const cli = scriptCli(script);
    const passed = rest[0] === '--' ? rest.slice(1) : rest;
    if (cli) checkFlags(root, cli, passed, problems, `${command} ${name}`);
    else if (passed.some((arg) => arg.startsWith('--')))
      problems.push(`${command} ${name}: its script runs no node CLI to take ${passed.join(' ')}`);
    checkPaths(root, passed, problems);
  };
  const fileCli = (path: string | undefined, rest: readonly string[]) => {
    if (path === undefined || !existsSync(join(root, path))) {
      problems.push(`${path ?? 'a script'} does not exist (built?)`);
      return;
    }
    checkFlags(root, path, rest, problems, path);
    checkPaths(root, rest, problems);
  };
  switch (command) {
    case 'npm': {
      const [sub = '', name = '', ...rest] = args;
      if (sub === 'test')
        rootScript(
          'test',
          [name, ...rest].filter((a) => a !== ''),
        );
      else if (sub === 'run') rootScript(name, rest);
      else problems.push(`npm ${sub}: only \`npm test\` and \`npm run SCRIPT\` are checked`);
      break;
    }
    case 'pnpm': {
      if (args[0] === '--filter') {
        const [, name = '', script = ''] = args;
        const dir = packages.get(name);
        if (!dir) problems.push(`no workspace package is named ${name}`);
        else if (manifest(dir).scripts?.[script] === undefined)
          problems.push(`${name} has no script "${script}"`);
      } else rootScript(args[0] ?? '', args.slice(1));
      break;
    }
    case 'node':
      fileCli(args[0], args.slice(1));
      break;
    case 'node_modules/.bin/bun':
    case 'node_modules/deno/deno': {
      if (!existsSync(join(root, command))) problems.push(`${command} does not exist (installed?)`);
      const rest = command.endsWith('deno') ? args.slice(args.indexOf('run') + 1) : args;
      const script = rest.findIndex((arg) => !arg.startsWith('-'));
      fileCli(rest[script], rest.slice(script + 1));
      break;
    }
    case 'python3': {
      const [path = '', sub] = args;
      if (!existsSync(join(root, path))) problems.push(`${path} does not exist`);
      else if (sub !== undefined && !readFileSync(join(root, path), 'utf8').includes(`'${sub}'`))
        problems.push(`${path} has no command '${sub}'`);
      break;
    }
    default: {
      const owner = [...packages.values()].find((dir) => {
        const bin = manifest(dir).bin;
        return typeof bin === 'object' && bin[command] !== undefined;
      });
      if (!owner) {
        problems.push(`${command}: not a command these checks know (npm, pnpm, node, a workspace bin, ...)`);
        break;
      }
      const bin = (manifest(owner).bin as Record<string, string>)[command] as string;
      const path = join(owner, bin).slice(root.length);
      checkFlags(root, path, args, problems, command);
      for (const arg of args)
        for (const name of arg.matchAll(/@comm\/[\w-]+/g))
          if (!packages.has(name[0])) problems.push(`no workspace package is named ${name[0]}`);
    }
  }
  return problems;
}

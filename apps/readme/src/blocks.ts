import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (this file is apps/readme/src/blocks.ts, or its build in dist/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export type Runtime = 'node' | 'bun' | 'deno';
export const runtimes: readonly Runtime[] = ['node', 'bun', 'deno'];

/** One step of a server or client test, in the order the annotation gives them. */
export type Step =
  /** Opens one more connection to the server; it becomes the current one. */
  | { do: 'connect' }
  /** Makes connection N (1-based, in the order they were opened) the current one. */
  | { do: 'use'; connection: number }
  /** Sends a line (and its newline) on the current connection. */
  | { do: 'send'; line: string }
  /** Sends one line of N bytes (`x` repeated), then its newline. */
  | { do: 'send-long'; bytes: number }
  /** The current connection's next line is this. */
  | { do: 'expect'; line: string }
  /** The current connection ends (end of file or reset) without another line. */
  | { do: 'expect-eof' }
  /** A new TCP connection to the server's port is refused: it listens no more. */
  | { do: 'expect-refused' }
  /** The server's process exits with this code. */
  | { do: 'expect-exit'; code: number }
  /** SIGTERM to the server's process. */
  | { do: 'sigterm' }
  /** An HTTP GET of this path answers 200 with this body (trimmed). */
  | { do: 'http-get'; path: string; body: string }
  /** A client's or script's standard output has this line (the lines in this order). */
  | { do: 'prints'; line: string };

export type Annotation =
  | { kind: 'not-run'; reason: string }
  | { kind: 'compile-only'; reason: string; runtimes: readonly Runtime[] }
  /** A server: started, told its port, talked to over TCP (or comm-stream for @comm/uws), stopped. */
  | { kind: 'server'; runtimes: readonly Runtime[]; steps: readonly Step[]; denoFlags: readonly string[] }
  /** A client of the README's previous server block: that server runs, this one must exit 0. */
  | { kind: 'client'; runtimes: readonly Runtime[]; steps: readonly Step[]; denoFlags: readonly string[] }
  /** A script that must exit 0. */
  | { kind: 'run'; runtimes: readonly Runtime[]; steps: readonly Step[]; denoFlags: readonly string[] }
  /** A listing of signatures: every name called at its top level is an export of `module`. */
  | { kind: 'api'; module: string }
  /** Shell commands: the scripts, files, binaries and flags they name exist. */
  | { kind: 'commands' }
  /** A configuration: the text the tests generate with `fn(...args)` from `@comm/talk/proxy-configs`. */
  | { kind: 'config'; fn: string; args: readonly (string | number)[] };

export interface Block {
  /** The README, relative to the repository root. */
  readonly readme: string;
  /** The line of the opening fence, 1-based. */
  readonly line: number;
  readonly lang: string;
  readonly code: string;
  /** The annotation's text after `example:`, or null when the block has none. */
  readonly annotationText: string | null;
}

/** Every README.md of the repository that the examples test reads: the root's, packages/*'s, apps/*'s. */
export function findReadmes(root = repoRoot): string[] {
  const found = ['README.md'];
  for (const dir of ['packages', 'apps']) {
    const entries = readdirSync(join(root, dir), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    for (const name of entries)
      if (existsSync(join(root, dir, name, 'README.md'))) found.push(`${dir}/${name}/README.md`);
  }
  return found.filter((path) => existsSync(join(root, path)));
}

const ANNOTATION = /^<!--\s*example:\s*([\s\S]*?)\s*-->$/;

/** The fenced code blocks of a Markdown text, each with the `<!-- example: ... -->` comment right before it. */
export function extractBlocks(readme: string, text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = (lines[i] as string).match(/^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/);
    if (!open) continue;
    const [, indent = '', fence = '', lang = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j] as string;
      const close = line.match(/^\s*(`{3,}|~{3,})\s*$/);
      if (close && (close[1] as string)[0] === fence[0] && (close[1] as string).length >= fence.length) break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    blocks.push({
      readme,
      line: i + 1,
      lang: lang.toLowerCase(),
      code: `${body.join('\n')}\n`,
      annotationText: annotationBefore(lines, i),
    });
    i = j;
  }
  return blocks;
}

/** The text of the `<!-- example: ... -->` comment that ends on the last non-blank line before line `i`. */
function annotationBefore(lines: readonly string[], i: number): string | null {
  let end = i - 1;
  while (end >= 0 && (lines[end] as string).trim() === '') end--;
  if (end < 0 || !(lines[end] as string).trim().endsWith('-->')) return null;
  let start = end;
  while (start >= 0 && !(lines[start] as string).includes('<!--')) start--;
  if (start < 0) return null;
  const comment = lines
    .slice(start, end + 1)
    .map((line) => line.trim())
    .join(' ');
  const match = comment.slice(comment.lastIndexOf('<!--')).match(ANNOTATION);
  return match ? (match[1] as string) : null;
}

/** Every block of every README. */
export function allBlocks(root = repoRoot): Block[] {
  return findReadmes(root).flatMap((readme) =>
    extractBlocks(readme, readFileSync(join(root, readme), 'utf8')),
  );
}

/** The runtime a README's examples are for: Bun's and Deno's packages', Node for every other. */
export function defaultRuntime(readme: string): Runtime {
  if (readme.startsWith('packages/bun/')) return 'bun';
  if (readme.startsWith('packages/deno/')) return 'deno';
  return 'node';
}

export const TS_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'tsx']);
export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);

export const ANNOTATION_HELP =
  'say how it is tested in an HTML comment right before the fence: `<!-- example: server; send "hi"; expect "..." -->`, ' +
  '`<!-- example: client-of previous; prints "..." -->`, `<!-- example: run -->`, `<!-- example: compile-only — reason -->`, ' +
  '`<!-- example: not run — reason -->`, `<!-- example: commands -->`, `<!-- example: config haproxyConfig(10243, 10244) -->` ' +
  'or `<!-- example: api @comm/node -->` (apps/readme/README.md has them all)';

/** Splits on `sep` outside double-quoted strings (which keep their backslash escapes). */
function splitOutsideQuotes(text: string, sep: RegExp): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      current += c;
      if (c === '\\') current += text[++i] ?? '';
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (sep.test(c)) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  if (quoted) throw new Error(`an unterminated string in "${text}"`);
  parts.push(current);
  return parts.map((part) => part.trim()).filter((part) => part !== '');
}

function quoted(token: string | undefined, where: string): string {
  if (token === undefined || !token.startsWith('"'))
    throw new Error(`${where} takes a "double-quoted" string, not ${token ?? 'nothing'}`);
  return JSON.parse(token) as string;
}

function count(token: string | undefined, where: string): number {
  if (token === undefined || !/^\d+$/.test(token)) throw new Error(`${where} takes a number, not ${token}`);
  return Number(token);
}

function parseStep(clause: string): Step {
  const [verb, ...rest] = splitOutsideQuotes(clause, /\s/);
  const arg = rest[0];
  const only = (n: number) => {
    if (rest.length !== n) throw new Error(`"${clause}": ${verb} takes ${n} argument${n === 1 ? '' : 's'}`);
  };
  switch (verb) {
    case 'connect':
      only(0);
      return { do: 'connect' };
    case 'use':
      only(1);
      return { do: 'use', connection: count(arg, 'use') };
    case 'send':
      only(1);
      return { do: 'send', line: quoted(arg, 'send') };
    case 'send-long':
      only(1);
      return { do: 'send-long', bytes: count(arg, 'send-long') };
    case 'expect':
      if (arg === 'exit') {
        only(2);
        return { do: 'expect-exit', code: count(rest[1], 'expect exit') };
      }
      only(1);
      if (arg === 'eof') return { do: 'expect-eof' };
      if (arg === 'refused') return { do: 'expect-refused' };
      return { do: 'expect', line: quoted(arg, 'expect') };
    case 'sigterm':
      only(0);
      return { do: 'sigterm' };
    case 'http-get':
      only(2);
      return { do: 'http-get', path: quoted(arg, 'http-get'), body: quoted(rest[1], 'http-get') };
    case 'prints':
      only(1);
      return { do: 'prints', line: quoted(arg, 'prints') };
    default:
      throw new Error(
        `unknown step "${clause}" (steps: connect, use N, send "line", send-long N, expect "line", expect eof, ` +
          'expect refused, expect exit N, sigterm, http-get "/path" "body", prints "line")',
      );
  }
}

/** `not run — reason` / `compile-only — reason`: the dash may be an em dash, an en dash, `-` or `:`. */
function reasonOf(text: string, keyword: string): string | null {
  const match = text.match(new RegExp(`^${keyword}(?:\\s+in\\s+([a-z, ]+?))?\\s*(?:—|–|-|:)\\s*(.+)$`, 's'));
  if (!match) {
    if (new RegExp(`^${keyword}\\b`).test(text))
      throw new Error(`"${keyword}" needs its reason: \`${keyword} — why\``);
    return null;
  }
  return (match[2] as string).trim();
}

function parseRuntimes(text: string): Runtime[] {
  const names = text.split(/[\s,]+/).filter((name) => name !== '');
  for (const name of names)
    if (!(runtimes as readonly string[]).includes(name))
      throw new Error(`unknown runtime "${name}" (node, bun, deno)`);
  return names as Runtime[];
}

/** Parses an annotation's text (after `example:`); `readme` gives the default runtime. */
export function parseAnnotation(text: string, readme: string): Annotation {
  const notRun = reasonOf(text, 'not run');
  if (notRun !== null) return { kind: 'not-run', reason: notRun };
  const compileOnly = reasonOf(text, 'compile-only');
  if (compileOnly !== null) {
    const inClause = text.match(/^compile-only\s+in\s+([a-z, ]+?)\s*(?:—|–|-|:)/);
    return {
      kind: 'compile-only',
      reason: compileOnly,
      runtimes: inClause ? parseRuntimes(inClause[1] as string) : [defaultRuntime(readme)],
    };
  }
  const [head = '', ...clauses] = splitOutsideQuotes(text, /;/);
  const headMatch = head.match(/^(server|client-of previous|run|api|commands|config)\b\s*(.*)$/s);
  if (!headMatch)
    throw new Error(
      `unknown kind of example "${head}" (server, client-of previous, run, compile-only — reason, not run — reason, commands, config, api)`,
    );
  const kind = headMatch[1] as string;
  const tail = (headMatch[2] as string).trim();
  if (kind === 'api') {
    if (!/^@?[\w/.-]+$/.test(tail) || clauses.length > 0) throw new Error('`api` takes a module name only');
    return { kind: 'api', module: tail };
  }
  if (kind === 'commands') {
    if (tail !== '' || clauses.length > 0) throw new Error('`commands` takes nothing more');
    return { kind: 'commands' };
  }
  if (kind === 'config') {
    const call = tail.match(/^(\w+)\((.*)\)$/s);
    if (!call || clauses.length > 0)
      throw new Error('`config` takes one call: `config haproxyConfig(10243, 10244)`');
    const args = splitOutsideQuotes(call[2] as string, /,/).map((arg) =>
      /^\d+$/.test(arg) ? Number(arg) : arg.startsWith('"') ? (JSON.parse(arg) as string) : arg,
    );
    return { kind: 'config', fn: call[1] as string, args };
  }
  let runtimesOf: Runtime[] = [defaultRuntime(readme)];
  if (tail !== '') {
    const inClause = tail.match(/^in\s+(.+)$/);
    if (!inClause) throw new Error(`"${head}": after the kind, only \`in RUNTIME[, RUNTIME]\``);
    runtimesOf = parseRuntimes(inClause[1] as string);
  }
  const steps: Step[] = [];
  let denoFlags: string[] = ['-A'];
  for (const clause of clauses) {
    const flags = clause.match(/^deno-permissions\s+(.+)$/);
    if (flags) denoFlags = (flags[1] as string).split(/\s+/);
    else steps.push(parseStep(clause));
  }
  const which = kind === 'client-of previous' ? 'client' : (kind as 'server' | 'run');
  const allowed: Record<typeof which, ReadonlySet<Step['do']>> = {
    server: new Set([
      'connect',
      'use',
      'send',
      'send-long',
      'expect',
      'expect-eof',
      'expect-refused',
      'expect-exit',
      'sigterm',
      'http-get',
    ]),
    client: new Set(['prints', 'expect-exit']),
    run: new Set(['prints', 'expect-exit']),
  };
  for (const step of steps)
    if (!allowed[which].has(step.do)) throw new Error(`a ${kind} example cannot have the step "${step.do}"`);
  return { kind: which, runtimes: runtimesOf, steps, denoFlags };
}

/** `README.md:60`: where a block is, for messages. */
export function where(block: Block): string {
  return `${block.readme}:${block.line}`;
}

/** A name for a block's work directory: `root-60`, `packages-bun-7`. */
export function slug(block: Block): string {
  const dir = block.readme.replace(/\/?README\.md$/, '').replace(/[^\w]+/g, '-');
  return `${dir === '' ? 'root' : dir}-${block.line}`;
}

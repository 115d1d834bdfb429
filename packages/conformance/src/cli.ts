#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';
import './cases/index.js';
import { formatMatrix, type Matrix } from './matrix.js';
import { type BackendModule, cases, runSuite } from './suite.js';

const usage = `usage: comm-conformance --backend NAME=MODULE [--backend ...] [--only PATTERN] [--json]
  MODULE is a path or package name that exports the contract bound to a backend (like @comm/node).
  --only keeps the cases whose id contains PATTERN. --json prints the outcomes as JSON instead of the matrix.`;

const backends: Array<{ name: string; entry: string }> = [];
let only: string | null = null;
let json = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg === '--backend') {
    const value = args[++i] ?? '';
    const eq = value.indexOf('=');
    if (eq <= 0) {
      console.error(`--backend takes NAME=MODULE, not "${value}"\n${usage}`);
      process.exit(2);
    }
    const module = value.slice(eq + 1);
    const entry =
      module.startsWith('.') || isAbsolute(module) || existsSync(module)
        ? pathToFileURL(resolve(module)).href
        : module;
    backends.push({ name: value.slice(0, eq), entry });
  } else if (arg === '--only') only = args[++i] ?? '';
  else if (arg === '--json') json = true;
  else {
    console.error(`unknown argument "${arg}"\n${usage}`);
    process.exit(2);
  }
}
if (backends.length === 0) {
  console.error(usage);
  process.exit(2);
}

const matrix: Matrix = new Map();
for (const { name, entry } of backends) {
  const api = (await import(entry)) as BackendModule;
  const results = await runSuite(
    { api, entry: import.meta.resolve(entry) },
    {
      only: only === null ? undefined : (c) => c.id.includes(only as string),
      onResult: json ? undefined : (c, o) => process.stderr.write(`${name} ${c.id}: ${o.status}\n`),
    },
  );
  matrix.set(name, results);
}
if (json)
  console.log(JSON.stringify(Object.fromEntries([...matrix].map(([k, v]) => [k, Object.fromEntries(v)]))));
else {
  const ids = cases.filter((c) => [...matrix.values()].some((m) => m.has(c.id))).map((c) => c.id);
  console.log(formatMatrix(matrix, ids));
}
const failed = [...matrix.values()].some((m) => [...m.values()].some((o) => o.status === 'fail'));
process.exit(failed ? 1 : 0);

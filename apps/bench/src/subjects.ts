import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './native.js';

export type BackendName = 'node' | 'bun' | 'deno' | 'uws';

/** One thing measured: a backend in one runtime, its talk server against the bare runtime's server. */
export interface Subject {
  /** `node@20`, `node@24`, `node@26`, `bun`, `deno`, `uws`. */
  readonly name: string;
  readonly backend: BackendName;
  /** The runtime binary itself (no shim that would start it as a child). */
  readonly bin: string;
  /** Arguments before the script (`run -A` for Deno). */
  readonly runArgs: readonly string[];
  /** `node 20.20.2`, `bun 1.4.4`, `deno 2.9.6`. */
  readonly runtime: string;
  /** How the load generator talks to it. */
  readonly transport: 'tcp' | 'ws';
}

function version(bin: string, args: readonly string[]): string | null {
  try {
    return execFileSync(bin, [...args], { encoding: 'utf8', timeout: 20_000 }).trim();
  } catch {
    return null;
  }
}

function nodeAt(bin: string): { bin: string; version: string } | null {
  if (!existsSync(bin)) return null;
  const v = version(bin, ['--version']);
  return v ? { bin, version: v.replace(/^v/, '') } : null;
}

/** The Node binaries: the running one (the system's), and Node 24 and 26 from apps/bench/runtimes. */
function nodes(): Map<string, { bin: string; version: string }> {
  const found = new Map<string, { bin: string; version: string }>();
  const self = { bin: process.execPath, version: process.versions.node };
  found.set(`node@${self.version.split('.')[0]}`, self);
  for (const alias of ['node24', 'node26']) {
    const node = nodeAt(join(repoRoot, 'apps', 'bench', 'runtimes', 'node_modules', alias, 'bin', 'node'));
    if (node) found.set(`node@${node.version.split('.')[0]}`, node);
  }
  return found;
}

function bunBinary(): string | null {
  const path = join(repoRoot, 'node_modules', 'bun', 'bin', 'bun.exe');
  return existsSync(path) ? path : null;
}

/** The real Deno binary: node_modules/.bin/deno is a shim that would start it as a child. */
function denoBinary(): string | null {
  const path = join(repoRoot, 'node_modules', 'deno', 'deno');
  return existsSync(path) ? path : null;
}

export const allSubjectNames = ['node@20', 'node@24', 'node@26', 'bun', 'deno', 'uws'];

/**
 * The subjects `--backends` names: `node` is every Node line installed, `node@24` one of them,
 * `bun`, `deno`, `uws` (on the system's Node). Unknown or missing ones are reported in `missing`.
 */
export function resolveSubjects(names: readonly string[]): { subjects: Subject[]; missing: string[] } {
  const subjects: Subject[] = [];
  const missing: string[] = [];
  const nodeLines = nodes();
  const add = (s: Subject) => {
    if (!subjects.some((t) => t.name === s.name)) subjects.push(s);
  };
  for (const name of names) {
    if (name === 'node' || name.startsWith('node@')) {
      const lines = name === 'node' ? [...nodeLines.keys()].sort(byMajor) : [name];
      for (const line of lines) {
        const node = nodeLines.get(line);
        if (!node)
          missing.push(
            `${line} (not installed: pnpm install puts Node 24 and 26 in apps/bench/runtimes/node_modules)`,
          );
        else
          add({
            name: line,
            backend: 'node',
            bin: node.bin,
            runArgs: [],
            runtime: `node ${node.version}`,
            transport: 'tcp',
          });
      }
    } else if (name === 'bun') {
      const bin = bunBinary();
      const v = bin && version(bin, ['--version']);
      if (!bin || !v) missing.push('bun (node_modules/bun/bin/bun.exe: run pnpm install)');
      else add({ name, backend: 'bun', bin, runArgs: [], runtime: `bun ${v}`, transport: 'tcp' });
    } else if (name === 'deno') {
      const bin = denoBinary();
      const v = bin && version(bin, ['--version']);
      if (!bin || !v) missing.push('deno (node_modules/deno/deno: run pnpm install)');
      else
        add({
          name,
          backend: 'deno',
          bin,
          runArgs: ['run', '-A'],
          runtime: `deno ${(v.match(/deno (\S+)/) ?? [])[1] ?? v}`,
          transport: 'tcp',
        });
    } else if (name === 'uws') {
      add({
        name,
        backend: 'uws',
        bin: process.execPath,
        runArgs: [],
        runtime: `node ${process.versions.node}`,
        transport: 'ws',
      });
    } else missing.push(`${name} (unknown: choose from node, ${allSubjectNames.join(', ')})`);
  }
  return { subjects, missing };
}

function byMajor(a: string, b: string): number {
  return Number(a.split('@')[1]) - Number(b.split('@')[1]);
}

/** A certificate and its key, for the servers of the TLS rows. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** `--tls-cert FILE --tls-key FILE`, or nothing. */
function tlsArgs(tls: TlsFiles | null | undefined): string[] {
  return tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
}

/** The command line of the subject's talk server (apps/talk), run in its runtime directly; over TLS with `tls`. */
export function talkCommand(subject: Subject, tls?: TlsFiles | null): [string, string[]] {
  return [
    subject.bin,
    [
      ...subject.runArgs,
      join(repoRoot, 'apps', 'talk', 'dist', 'server.js'),
      '--backend',
      subject.backend,
      '--service',
      '0',
      '--address',
      '127.0.0.1',
      '--backlog',
      '4096',
      ...tlsArgs(tls),
    ],
  ];
}

/** The command line of the same protocol written directly on the subject's runtime; over its own TLS with `tls`. */
export function bareCommand(subject: Subject, tls?: TlsFiles | null): [string, string[]] {
  return [
    subject.bin,
    [
      ...subject.runArgs,
      join(repoRoot, 'apps', 'bench', 'dist', 'bare', `${subject.backend}.js`),
      ...tlsArgs(tls),
    ],
  ];
}

/** The subject's declared deviations, read from its backend package in its runtime. */
export function deviationsCommand(subject: Subject): [string, string[]] {
  return [
    subject.bin,
    [...subject.runArgs, join(repoRoot, 'apps', 'bench', 'dist', 'deviations.js'), subject.backend],
  ];
}

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Child, startChild } from '@comm/bench/children';
import { fdCount, hardFdLimit, listenerOf, rssKiB } from './proc.js';

/** apps/hostile, from dist/ or src/. */
export const hostileDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = join(hostileDir, '..', '..');
export const clientScript = join(hostileDir, 'clients', 'hostile.py');

export type BackendName = 'node' | 'bun' | 'deno' | 'uws';
export const allBackends: readonly BackendName[] = ['node', 'bun', 'deno', 'uws'];

/** How the clients reach a backend: TCP, or comm-stream over WebSocket (uws). */
export const transportOf = (backend: BackendName): 'tcp' | 'ws' => (backend === 'uws' ? 'ws' : 'tcp');

/**
 * The command that runs the talk server in the backend's own runtime, with the runtime's binary
 * itself (not the npm shims, not the talk server's re-exec): the process started is the one measured.
 */
export function serverCommand(backend: BackendName): string[] {
  const script = join(repoRoot, 'apps', 'talk', 'dist', 'server.js');
  // The talk server's default backlog is LispWorks' 5; hostile traffic is measured with a real one.
  const args = [script, '--backend', backend, '--service', '0', '--backlog', '511'];
  if (backend === 'bun') return [runtimeBinary('bun'), ...args];
  if (backend === 'deno') return [runtimeBinary('deno'), 'run', '-A', ...args];
  return [process.execPath, ...args];
}

function runtimeBinary(runtime: 'bun' | 'deno'): string {
  const path =
    runtime === 'bun'
      ? join(repoRoot, 'node_modules', 'bun', 'bin', 'bun.exe')
      : join(repoRoot, 'node_modules', 'deno', 'deno');
  if (!existsSync(path))
    throw new Error(`${runtime} is not installed at ${path}: run node scripts/setup.mjs`);
  return path;
}

export interface Server {
  readonly backend: BackendName;
  readonly child: Child;
  /** The runtime process that holds the listening socket (measured). */
  readonly pid: number;
  readonly port: number;
  /** The descriptor limit it was started with. */
  readonly fdLimit: number;
}

/** A fresh talk server, under `ulimit -n fdLimit` (default: the hard limit), listening on a free port. */
export async function startServer(backend: BackendName, fdLimit?: number): Promise<Server> {
  const limit = fdLimit ?? hardFdLimit();
  const [command, ...args] = serverCommand(backend);
  const child = startChild(
    'bash',
    ['-c', 'ulimit -n "$0" && exec "$@"', String(limit), command as string, ...args],
    { cwd: repoRoot },
  );
  try {
    const match = await child.waitFor(/listening on \S+ port (\d+)/, 30_000);
    const port = Number(match[1]);
    let pid = listenerOf(child.pid, port);
    for (let i = 0; i < 20 && pid === null; i++) {
      await sleep(50);
      pid = listenerOf(child.pid, port);
    }
    if (pid === null) throw new Error(`no process of the group listens on port ${port}`);
    return { backend, child, pid, port, fdLimit: limit };
  } catch (error) {
    await child.stop(1000);
    throw error;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until the descriptor count holds still for `quietMs` (or `maxMs` passes); the last count. */
export async function settledFds(pid: number, quietMs = 300, maxMs = 3000): Promise<number | null> {
  const until = Date.now() + maxMs;
  let last = fdCount(pid);
  let since = Date.now();
  while (Date.now() < until) {
    await sleep(50);
    const now = fdCount(pid);
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
  }
  return last;
}

/** Samples VmRSS every `everyMs` until stopped: the peak (KiB). */
export function rssSampler(pid: number, everyMs = 50): { peak: () => number; stop: () => number } {
  let peak = rssKiB(pid) ?? 0;
  const timer = setInterval(() => {
    const now = rssKiB(pid);
    if (now !== null && now > peak) peak = now;
  }, everyMs);
  return {
    peak: () => peak,
    stop: () => {
      clearInterval(timer);
      const now = rssKiB(pid);
      if (now !== null && now > peak) peak = now;
      return peak;
    },
  };
}

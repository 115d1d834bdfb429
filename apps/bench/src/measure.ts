import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { type Child, startChild } from './children.js';
import type { Stat } from './model.js';
import { nativeBinary } from './native.js';

/** What the load generator prints at the end of a run. */
export interface LoadResult {
  mode: string;
  transport: 'tcp' | 'ws';
  /** Whether it talked TLS (verifying the server's certificate when given a CA). */
  tls: boolean;
  connections: number;
  depth: number;
  lineBytes: number;
  seconds: number;
  replies: number;
  perSecond: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  errors: number;
  wrongReplies: number;
  closedByPeer: number;
  connected: number;
  established: number;
  cpuSeconds: number;
  wallSeconds: number;
  /** --tls: the protocol and cipher of the first handshake (`TLSv1.3 TLS_AES_256_GCM_SHA384`); null without TLS. */
  tlsSession: string | null;
}

/** The figures of one run that go into a report. */
export function statOf(r: LoadResult): Stat {
  return {
    perSecond: r.perSecond,
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    loadgenBusy: r.wallSeconds > 0 ? r.cpuSeconds / r.wallSeconds : 0,
    errors: r.errors,
    wrongReplies: r.wrongReplies,
    ...(r.tlsSession ? { tlsSession: r.tlsSession } : {}),
  };
}

export interface Pinning {
  /** CPU of the servers, CPU of the load generator; null when taskset or a second CPU is missing. */
  server: number | null;
  loadgen: number | null;
}

/** Runs `command` pinned to `cpu` with a raised open-file limit, as the process itself (exec). */
export function pinned(cpu: number | null, command: string, args: readonly string[]): [string, string[]] {
  const script = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  const tail = cpu === null ? [command, ...args] : ['taskset', '-c', String(cpu), command, ...args];
  return ['sh', ['-c', script, 'sh', ...tail]];
}

/** A server under test: its process (the runtime itself, not a wrapper) and its port. */
export interface Server {
  readonly label: string;
  readonly child: Child;
  readonly port: number;
}

export async function startServer(
  label: string,
  command: [string, string[]],
  pinning: Pinning,
  timeoutMs = 30_000,
): Promise<Server> {
  const child = startChild(...pinned(pinning.server, command[0], command[1]));
  try {
    const match = await child.waitFor(/ port (\d+)\s*$/m, timeoutMs);
    return { label, child, port: Number(match[1]) };
  } catch (error) {
    await child.stop(500);
    throw new Error(`${label}: ${(error as Error).message}`);
  }
}

/** Resident memory of a process in KiB (VmRSS), or null when it cannot be read. */
export function rssKiB(pid: number): number | null {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

export interface LoadSpec {
  mode: 'rr' | 'pipelined' | 'connect';
  connections: number;
  depth: number;
  lineBytes: number;
  seconds: number;
  warmup: number;
  /** TLS, the certificate and the name localhost verified against `ca`; handshakes before the clock. */
  tls?: { ca: string } | null;
}

/** One run of the load generator against `port`; rejects on a timeout or a bad exit. */
export async function load(
  port: number,
  transport: 'tcp' | 'ws',
  spec: LoadSpec,
  pinning: Pinning,
): Promise<LoadResult> {
  const args = [
    '--port',
    String(port),
    '--mode',
    spec.mode,
    '--conns',
    String(spec.connections),
    '--depth',
    String(spec.depth),
    '--size',
    String(spec.lineBytes),
    '--seconds',
    String(spec.seconds),
    '--warmup',
    String(spec.warmup),
    '--timeout',
    '30',
    ...(transport === 'ws' ? ['--ws'] : []),
    ...(spec.tls ? ['--tls', '--sni', 'localhost', '--ca', spec.tls.ca] : []),
  ];
  const child = startChild(...pinned(pinning.loadgen, nativeBinary('loadgen'), args));
  const limit = (spec.seconds + spec.warmup + 45) * 1000;
  const timer = setTimeout(() => void child.stop(500), limit);
  const code = await child.exited;
  clearTimeout(timer);
  const line = child.output().trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{'))
    throw new Error(`loadgen exited ${code}${child.errors() ? `: ${child.errors().trim()}` : ''}`);
  return JSON.parse(line) as LoadResult;
}

export interface IdleResult {
  connections: number;
  established: number;
  openSeconds: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  kibPerConnection: number;
  errors: number;
  wrongReplies: number;
}

/**
 * Memory per idle connection: the server's RSS after it is up and warmed, then after `n`
 * connections each got one reply (the load generator holds them open meanwhile).
 */
export async function idle(
  server: Server,
  transport: 'tcp' | 'ws',
  n: number,
  timeoutS: number,
  pinning: Pinning,
): Promise<IdleResult> {
  const before = rssKiB(server.child.pid);
  const args = [
    '--port',
    String(server.port),
    '--mode',
    'idle',
    '--conns',
    String(n),
    '--seconds',
    '60',
    '--timeout',
    String(timeoutS),
  ];
  if (transport === 'ws') args.push('--ws');
  const child = startChild(...pinned(pinning.loadgen, nativeBinary('loadgen'), args), { stdin: true });
  const timer = setTimeout(() => void child.stop(500), (timeoutS + 90) * 1000);
  try {
    await child.waitFor(/"event":"established"/, (timeoutS + 30) * 1000);
    // Let the server finish what the last connections started before reading its memory.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = rssKiB(server.child.pid);
    child.write('done\n');
    child.process.stdin?.end();
    const code = await child.exited;
    const line = child.output().trim().split('\n').pop() ?? '';
    if (code !== 0 || !line.startsWith('{"mode"'))
      throw new Error(`loadgen exited ${code}: ${child.errors().trim()}`);
    const result = JSON.parse(line) as LoadResult;
    if (before === null || after === null)
      throw new Error(
        server.child.alive()
          ? `cannot read the RSS of ${server.label} (pid ${server.child.pid})`
          : `${server.label} exited while the idle connections were opened: ${server.child.errors().trim().slice(-400) || 'no message'}`,
      );
    return {
      connections: n,
      established: result.established,
      openSeconds: result.seconds,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      kibPerConnection: result.established > 0 ? (after - before) / result.established : Number.NaN,
      errors: result.errors,
      wrongReplies: result.wrongReplies,
    };
  } finally {
    clearTimeout(timer);
    await child.stop(500);
  }
}

/** Servers on CPU 1, the load generator on CPU 0; unpinned (and said so) without taskset or a second CPU. */
export function pinningFor(): Pinning {
  let taskset = false;
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    taskset = true;
  } catch {
    // no taskset (util-linux)
  }
  if (!taskset || os.cpus().length < 2) {
    console.error(
      'not pinned: taskset or a second CPU is missing, so the load generator and the server share the CPUs',
    );
    return { server: null, loadgen: null };
  }
  return { server: 1, loadgen: 0 };
}

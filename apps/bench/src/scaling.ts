// The scaling row: a subject's talk server as 1 process against 2 processes listening on one port
// with `reuseport: true` (SO_REUSEPORT: the kernel hands each new connection to one of the
// listening sockets, by a hash of its addresses and ports), driven by the same load, in
// alternating rounds. The figure is 2 workers' throughput over 1 worker's.
//
// Three workers are started once per subject (scaling-worker.js, the talk app's own
// makeStreamAndTalk on @comm/<backend>): the single worker on a port of its own, and the pair, the
// second started on the port the first announced. All three have `reuseport: true`, so that the
// two sides differ only in how many processes listen. Before any load the kernel's table
// (/proc/net/tcp and tcp6, what `ss -Hltnp sport = :PORT` shows) must hold exactly one listening
// socket on the single worker's port, held by it, and exactly two on the pair's, one held by each;
// and in every round of the pair each worker must have accepted connections (each counts what it
// accepts and says so on SIGUSR2 and when stopped). Otherwise the row is a fault: no ratio is
// printed, and the bench exits 1.
//
// Pinning: none, on either side, and said so. On a machine with 2 CPUs the load generator (one
// thread) needs one of them half the time or more to drive one worker; the other rows pin the
// server to CPU 1 and the load generator to CPU 0 so that each has a CPU of its own, which cannot
// hold for two workers. Pinning the second worker to the load generator's CPU would give it only
// what the load generator leaves, and pinning both workers to CPU 1 would measure one CPU shared
// by two processes. Unpinned, the scheduler places the three processes as it would anywhere else,
// and the single worker gets the same freedom (its helper threads, GC and I/O, may use the other
// CPU too). So the ratio cannot reach 2 on 2 CPUs, and what it reaches depends on how much CPU
// the load generator needs per reply: each round therefore records the load generator's CPU use
// (its CPU time over its wall time), each worker's (its CPU time, all threads, over the round's
// wall time), and the CPU the rest of the machine used meanwhile (/proc/stat), and the table shows
// them beside the ratio. (A ceiling computed from the 1-worker rounds' CPU time per reply does not
// hold: with two workers each one is slower per connection, reads bigger batches, and spends less
// CPU per reply, and so does the load generator.)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startChild } from './children.js';
import { load, type Pinning, pinned, type Server, statOf } from './measure.js';
import {
  type Deviation,
  type ListeningSocket,
  medianStat,
  type ScalingCell,
  type ScalingSide,
  type Stat,
  type ThroughputWorkload,
  type WorkerShare,
  workloadSpecs,
} from './model.js';
import { repoRoot } from './native.js';
import type { Subject } from './subjects.js';

const unpinned: Pinning = { server: null, loadgen: null };

export interface ScalingOptions {
  rounds: number;
  seconds: number;
  warmup: number;
  /** The load: a throughput workload's lines and depth ... */
  workload: ThroughputWorkload;
  /** ... on this many connections, for the kernel to spread. */
  connections: number;
}

/** The command line of one scaling worker of the subject, on `port` (0: any free port). */
export function scalingWorkerCommand(subject: Subject, port: number): [string, string[]] {
  return [
    subject.bin,
    [
      ...subject.runArgs,
      join(repoRoot, 'apps', 'bench', 'dist', 'scaling-worker.js'),
      subject.backend,
      String(port),
    ],
  ];
}

/** The worker did not start: its startup condition (a runtime without SO_REUSEPORT, EADDRINUSE, ...). */
class Refused extends Error {}

async function startWorker(subject: Subject, label: string, port: number): Promise<Server> {
  const child = startChild(...pinned(unpinned.server, ...scalingWorkerCommand(subject, port)));
  try {
    const match = await child.waitFor(/^(?:scaling worker .* port (\d+)|refused: (.*))$/m, 30_000);
    if (match[2] !== undefined) throw new Refused(match[2]);
    return { label, child, port: Number(match[1]) };
  } catch (error) {
    await child.stop(500);
    // Its exit may come before the line that says why.
    const refused = child.output().match(/^refused: (.*)$/m);
    if (refused) throw new Refused(`${label}: ${refused[1]}`);
    throw new Error(`${label}: ${(error as Error).message}`);
  }
}

/** Owners of socket inodes: the pids whose descriptors point at each (every readable /proc/PID/fd). */
function socketOwners(inodes: ReadonlySet<number>): Map<number, number[]> {
  const owners = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${name}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = Number(target.match(/^socket:\[(\d+)\]$/)?.[1]);
      if (!inodes.has(inode)) continue;
      const pids = owners.get(inode) ?? [];
      if (!pids.includes(Number(name))) pids.push(Number(name));
      owners.set(inode, pids);
    }
  }
  return owners;
}

/** The listening TCP sockets on `port` (any address), from the kernel's tables, with their holders. */
export function listeningSockets(port: number): ListeningSocket[] {
  const inodes: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A') continue; // 0A: TCP_LISTEN
      if (Number.parseInt(fields[1]?.split(':')[1] ?? '', 16) === port) inodes.push(Number(fields[9]));
    }
  }
  const owners = socketOwners(new Set(inodes));
  return inodes.map((inode) => ({ inode, pids: owners.get(inode) ?? [] }));
}

/**
 * What is wrong with the listening sockets on one side's port, or null: each worker must hold one
 * of them, and there must be no other.
 */
export function listenerFault(
  sockets: readonly ListeningSocket[],
  workers: readonly number[],
): string | null {
  const shown = sockets.map(
    (s) => `inode ${s.inode} held by ${s.pids.length ? `pid ${s.pids.join(', ')}` : 'no process found'}`,
  );
  const what = `the kernel shows ${sockets.length} listening socket${sockets.length === 1 ? '' : 's'} on the port${shown.length ? ` (${shown.join('; ')})` : ''}`;
  if (sockets.length !== workers.length) return `${what}, not ${workers.length}`;
  for (const pid of workers)
    if (sockets.filter((s) => s.pids.includes(pid)).length !== 1)
      return `${what}: worker pid ${pid} does not hold exactly one of them`;
  return null;
}

/**
 * What is wrong with the pair's rounds, or null: in every round that ran, each of the two workers
 * must have accepted connections. One worker that served everything means the kernel did not
 * spread them, and a ratio would be a 1-worker figure twice.
 */
export function servedFault(two: Pick<ScalingSide, 'shares'>, connections: number): string | null {
  for (const [i, shares] of two.shares.entries()) {
    if (shares.length === 0) continue;
    if (shares.length !== 2) return `round ${i + 1}: ${shares.length} workers counted, not 2`;
    const idle = shares.find((s) => s.accepted === 0);
    const busy = shares.find((s) => s.accepted > 0);
    if (idle)
      return `round ${i + 1}: worker pid ${idle.pid} accepted no connection${busy ? ` (pid ${busy.pid} accepted ${busy.accepted} of the ${connections})` : ''}: the kernel did not spread them`;
  }
  return null;
}

/** The connections a worker has accepted so far: it prints `accepted N` on SIGUSR2. */
async function acceptedBy(worker: Server): Promise<number> {
  const from = worker.child.output().length;
  process.kill(worker.child.pid, 'SIGUSR2');
  const until = Date.now() + 10_000;
  for (;;) {
    const match = worker.child
      .output()
      .slice(from)
      .match(/^accepted (\d+)$/m);
    if (match) return Number(match[1]);
    if (!worker.child.alive())
      throw new Error(`${worker.label} has exited: ${worker.child.errors().trim().slice(-300)}`);
    if (Date.now() > until) throw new Error(`${worker.label} did not say how many connections it accepted`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let ticksPerSecond: number | null = null;
function ticks(): number {
  ticksPerSecond ??= (() => {
    try {
      return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      return 100;
    }
  })();
  return ticksPerSecond;
}

/** CPU time of a process, all its threads (utime + stime of /proc/PID/stat), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks();
}

/** CPU time the whole machine has spent busy (user, nice, system, irq, softirq of /proc/stat), in seconds. */
function machineBusySeconds(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
  return (user + nice + system + irq + softirq) / ticks();
}

/** One run of the load on one side's port, with what each of its workers accepted and burnt. */
async function round(
  workers: readonly Server[],
  transport: 'tcp' | 'ws',
  options: ScalingOptions,
  seconds: number,
): Promise<{ result: Stat | { error: string }; shares: WorkerShare[]; others: number | null }> {
  for (const w of workers)
    if (!w.child.alive())
      return {
        result: { error: `${w.label} has exited: ${w.child.errors().trim().slice(-300)}` },
        shares: [],
        others: null,
      };
  const spec = workloadSpecs[options.workload];
  try {
    const before = await Promise.all(workers.map(acceptedBy));
    const cpuBefore = workers.map((w) => cpuSeconds(w.child.pid));
    const machineBefore = machineBusySeconds();
    const started = performance.now();
    const result = await load(
      (workers[0] as Server).port,
      transport,
      {
        mode: spec.mode,
        connections: options.connections,
        depth: spec.depth,
        lineBytes: spec.lineBytes,
        seconds,
        warmup: 0,
      },
      unpinned,
    );
    const wall = (performance.now() - started) / 1000;
    const machine = machineBusySeconds() - machineBefore;
    const cpuAfter = workers.map((w) => cpuSeconds(w.child.pid));
    const after = await Promise.all(workers.map(acceptedBy));
    const shares = workers.map((w, i) => ({
      pid: w.child.pid,
      accepted: (after[i] as number) - (before[i] as number),
      cpu: ((cpuAfter[i] as number) - (cpuBefore[i] as number)) / wall,
    }));
    const ours = shares.reduce((sum, s) => sum + s.cpu * wall, 0) + result.cpuSeconds;
    const others = Math.max(0, machine - ours) / wall;
    if (result.perSecond === 0 && result.errors > 0)
      return { result: { error: `${result.errors} connection errors, no replies` }, shares, others };
    return { result: statOf(result), shares, others };
  } catch (error) {
    return { result: { error: (error as Error).message }, shares: [], others: null };
  }
}

/** The connections a worker said it accepted when it was stopped, or -1 when it did not say. */
function lastCount(worker: Server): number {
  const counts = [...worker.child.output().matchAll(/^accepted (\d+)$/gm)];
  return counts.length ? Number(counts.at(-1)?.[1]) : -1;
}

function emptySide(): ScalingSide {
  return { rounds: [], median: null, shares: [], others: [] };
}

function share(shares: readonly WorkerShare[]): string {
  return shares.map((s) => `${s.accepted} accepted, CPU ${Math.round(s.cpu * 100)}%`).join('; ');
}

/**
 * The scaling row of one subject. `declared` are its backend's declared deviations: a worker that
 * is refused where the backend declares that it cannot spread connections (the deviation
 * R20.spreads-connections, as @comm/node does on Node 20) is `unsupported`; anywhere else a refusal
 * is a fault.
 */
export async function scalingCell(
  subject: Subject,
  options: ScalingOptions,
  declared: readonly Deviation[] | null,
  progress: (line: string) => void,
): Promise<ScalingCell> {
  const cell: ScalingCell = {
    kind: 'scaling',
    workload: 'scaling',
    load: { workload: options.workload, connections: options.connections },
    one: emptySide(),
    two: emptySide(),
    listeners: { one: null, two: null },
    acceptedTotal: { one: [], two: [] },
    ratio: { throughput: null, min: null, max: null, p99: null },
    unsupported: null,
    fault: null,
    targets: [],
  };
  const name = `${subject.name} scaling`;
  const unit = workloadSpecs[options.workload].unit;
  let single: Server | null = null;
  let pair: Server[] = [];
  try {
    progress(
      `${name}: starting 1 worker and 2 workers sharing a port (reuseport, ${subject.runtime}, unpinned), ${options.workload} on ${options.connections} connections`,
    );
    single = await startWorker(subject, `${subject.name} single worker`, 0);
    const first = await startWorker(subject, `${subject.name} worker 1 of 2`, 0);
    pair = [first];
    pair.push(await startWorker(subject, `${subject.name} worker 2 of 2`, first.port));

    cell.listeners.one = listeningSockets(single.port);
    cell.listeners.two = listeningSockets(first.port);
    const listeners =
      listenerFault(cell.listeners.one, [single.child.pid]) ??
      listenerFault(
        cell.listeners.two,
        pair.map((w) => w.child.pid),
      );
    if (listeners !== null) {
      cell.fault = listeners;
      return cell;
    }
    progress(
      `${name}: the kernel shows port ${single.port} held by pid ${single.child.pid}, port ${first.port} by pids ${pair.map((w) => w.child.pid).join(' and ')}`,
    );

    progress(`${name}: warm-up`);
    await round([single], subject.transport, options, options.warmup);
    await round(pair, subject.transport, options, options.warmup);
    for (let r = 0; r < options.rounds; r++) {
      const order = r % 2 === 0 ? ([1, 2] as const) : ([2, 1] as const);
      for (const workers of order) {
        const { result, shares, others } = await round(
          workers === 1 ? [single] : pair,
          subject.transport,
          options,
          options.seconds,
        );
        const side = workers === 1 ? cell.one : cell.two;
        side.rounds.push(result);
        side.shares.push(shares);
        side.others.push(others);
        const figure =
          'error' in result
            ? `error: ${result.error}`
            : `${Math.round(result.perSecond)} ${unit}, p99 ${(result.p99Us / 1000).toFixed(2)} ms, loadgen CPU ${Math.round(result.loadgenBusy * 100)}%${result.errors || result.wrongReplies ? `, ${result.errors} errors, ${result.wrongReplies} wrong replies` : ''}`;
        progress(
          `${name} round ${r + 1}/${options.rounds} ${workers} worker${workers === 1 ? '' : 's'}: ${figure}; ${share(shares)}; rest of the machine ${others === null ? '?' : `${Math.round(others * 100)}%`}`,
        );
      }
    }
    cell.fault = servedFault(cell.two, options.connections);
    if (cell.fault !== null) return cell;

    cell.one.median = medianStat(cell.one.rounds);
    cell.two.median = medianStat(cell.two.rounds);
    const [one, two] = [cell.one.median, cell.two.median];
    if (one && two && one.perSecond > 0) {
      cell.ratio.throughput = two.perSecond / one.perSecond;
      if (two.perSecond > 0 && one.p99Us > 0) cell.ratio.p99 = two.p99Us / one.p99Us;
    }
    const perRound = cell.one.rounds.flatMap((a, i) => {
      const b = cell.two.rounds[i];
      return !b || 'error' in a || 'error' in b || a.perSecond <= 0 ? [] : [b.perSecond / a.perSecond];
    });
    if (perRound.length) [cell.ratio.min, cell.ratio.max] = [Math.min(...perRound), Math.max(...perRound)];
    return cell;
  } catch (error) {
    const message = (error as Error).message;
    if (error instanceof Refused) {
      const declares = declared?.some((d) => d.cases.includes('R20.spreads-connections')) ?? false;
      if (declares) {
        cell.unsupported = message;
        progress(`${name}: not available (declared by the backend): ${message}`);
      } else cell.fault = `reuseport refused, and the backend declares no such deviation: ${message}`;
    } else {
      for (const side of [cell.one, cell.two]) {
        side.rounds.push({ error: message });
        side.shares.push([]);
        side.others.push(null);
      }
      progress(`${name}: ${message}`);
    }
    return cell;
  } finally {
    // Every worker's group goes; each says what it accepted in all as it stops.
    for (const w of [single, ...pair]) await w?.child.stop();
    if (single) cell.acceptedTotal.one = [lastCount(single)];
    cell.acceptedTotal.two = pair.map(lastCount);
    if (cell.fault !== null) progress(`${name}: FAULT: ${cell.fault}`);
  }
}

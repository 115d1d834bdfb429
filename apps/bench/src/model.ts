import type { IdleResult } from './measure.js';

// scaling runs before connect, which leaves thousands of sockets in TIME_WAIT behind it.
export const workloadNames = [
  'rr',
  'pipelined',
  '1k',
  'tls-rr',
  'tls-pipelined',
  'idle',
  'scaling',
  'connect',
] as const;
export type WorkloadName = (typeof workloadNames)[number];
export type ThroughputWorkload = Exclude<WorkloadName, 'idle' | 'scaling'>;

/** What each workload asks of the load generator. */
export const workloadSpecs: Record<
  ThroughputWorkload,
  {
    mode: 'rr' | 'pipelined' | 'connect';
    depth: number;
    lineBytes: number;
    /** Over TLS: the talk server with --tls-cert/--tls-key against the runtime's own TLS server. */
    overTls: boolean;
    unit: string;
    what: string;
  }
> = {
  rr: {
    mode: 'rr',
    depth: 1,
    lineBytes: 0,
    overTls: false,
    unit: 'replies/s',
    what: 'request/response: each connection sends a line and waits for its reply',
  },
  pipelined: {
    mode: 'pipelined',
    depth: 16,
    lineBytes: 0,
    overTls: false,
    unit: 'replies/s',
    what: 'pipelined x16: 16 lines in flight per connection',
  },
  '1k': {
    mode: 'pipelined',
    depth: 16,
    lineBytes: 1024,
    overTls: false,
    unit: 'replies/s',
    what: '1 KiB lines, pipelined x16',
  },
  'tls-rr': {
    mode: 'rr',
    depth: 1,
    lineBytes: 0,
    overTls: true,
    unit: 'replies/s',
    what: 'rr over TLS: each connection (handshake done before the clock) sends a line and waits for its reply',
  },
  'tls-pipelined': {
    mode: 'pipelined',
    depth: 16,
    lineBytes: 0,
    overTls: true,
    unit: 'replies/s',
    what: 'pipelined x16 over TLS: 16 lines in flight per connection',
  },
  connect: {
    mode: 'connect',
    depth: 1,
    lineBytes: 0,
    overTls: false,
    unit: 'conn/s',
    what: 'connections opened per second: connect, one line, its reply, close',
  },
};

/** The conformance case a backend declares as a deviation when its talk server cannot serve TLS. */
export const TLS_CASE = 'R22.talk-over-tls';

/**
 * A TLS row without figures: why, when the backend declares TLS_CASE (its reason and upstream
 * link); null when it does not, or for a workload that is not over TLS.
 */
export function tlsUnsupported(
  workload: ThroughputWorkload,
  deviations: readonly Deviation[] | null,
): string | null {
  if (!workloadSpecs[workload].overTls) return null;
  const declared = deviations?.find((d) => d.cases.includes(TLS_CASE));
  return declared ? `${TLS_CASE} declared: ${declared.reason} (${declared.upstream})` : null;
}

/** The targets of issue 7 that the data path is measured against. */
export const targets = {
  rr: { throughput: 0.95, p99: 1.25 },
  pipelined: { throughput: 0.8, p99: 1.25 },
  /** 1 KiB lines are pipelined too: the pipelined targets. */
  '1k': { throughput: 0.8, p99: 1.25 },
  /** TLS: none set; reported against the runtime's own TLS server. */
  'tls-rr': null,
  'tls-pipelined': null,
  connect: null,
  idle: { kib: 16, ratio: 2 },
} as const;

export interface Stat {
  perSecond: number;
  p50Us: number;
  p99Us: number;
  /** The load generator's CPU time over its wall time. */
  loadgenBusy: number;
  errors: number;
  wrongReplies: number;
  /** Over TLS: the protocol and cipher the server agreed to (`TLSv1.3 TLS_AES_256_GCM_SHA384`). */
  tlsSession?: string;
}

export interface Side {
  rounds: (Stat | { error: string })[];
  /** Medians over the rounds that ran, each figure on its own. */
  median: Stat | null;
}

export interface Target {
  name: string;
  value: number | null;
  met: boolean | null;
}

export interface ThroughputCell {
  kind: 'throughput';
  workload: ThroughputWorkload;
  comm: Side;
  bare: Side;
  ratio: { throughput: number | null; p99: number | null };
  targets: Target[];
  /** Sockets in TIME_WAIT on the machine when the cell started (connect leaves them behind). */
  timeWaitAtStart?: number | null;
  /** Over TLS (the tls- workloads): both servers served TLS, and the load generator verified their certificate. */
  tls?: boolean;
  /** Why the subject has no figures in this row: its backend declares that it cannot (a TLS row). */
  unsupported?: string | null;
}

export interface IdleSide {
  rounds: (IdleResult | { error: string })[];
  kibPerConnection: number | null;
}

export interface IdleCell {
  kind: 'idle';
  workload: 'idle';
  connections: number;
  comm: IdleSide;
  bare: IdleSide;
  ratio: number | null;
  targets: Target[];
}

/** A listening socket on a port, as the kernel has it (/proc/net/tcp), and the processes holding it. */
export interface ListeningSocket {
  inode: number;
  pids: number[];
}

/** What one worker did in one round of the scaling row. */
export interface WorkerShare {
  pid: number;
  /** Connections it accepted during the round (its own count, asked with SIGUSR2). */
  accepted: number;
  /** Its CPU time (all threads, /proc/PID/stat) over the round's wall time: 1 is one CPU. */
  cpu: number;
}

export interface ScalingSide extends Side {
  /** Per round (aligned with `rounds`), per worker; empty for a round that failed. */
  shares: WorkerShare[][];
  /**
   * Per round: the CPU the rest of the machine used meanwhile (CPUs busy by /proc/stat less the
   * workers' and the load generator's own time, over the wall time): other work on the machine
   * that the round competed with. null for a round that failed.
   */
  others: (number | null)[];
}

/**
 * The scaling row: the subject's talk server as 1 worker against 2 workers sharing one port with
 * `reuseport: true`, in alternating rounds of the same load.
 */
export interface ScalingCell {
  kind: 'scaling';
  workload: 'scaling';
  /** The load each round: a throughput workload's lines and depth, on this many connections. */
  load: { workload: ThroughputWorkload; connections: number };
  one: ScalingSide;
  two: ScalingSide;
  /** The listening sockets the kernel showed on each side's port once it was up. */
  listeners: { one: ListeningSocket[] | null; two: ListeningSocket[] | null };
  /** Connections each worker accepted over its whole life (what it said when stopped). */
  acceptedTotal: { one: number[]; two: number[] };
  ratio: {
    /** median 2-worker throughput / median 1-worker throughput. */
    throughput: number | null;
    /** The lowest and highest of the rounds' own ratios (each round's 2 workers / its 1 worker). */
    min: number | null;
    max: number | null;
    p99: number | null;
  };
  /** Why the subject has no scaling row, when its backend declares that reuseport is unavailable. */
  unsupported: string | null;
  /** What went wrong when the row must not be believed (one worker served everything, ...). */
  fault: string | null;
  targets: Target[];
}

export type Cell = ThroughputCell | IdleCell | ScalingCell;

export interface Deviation {
  cases: readonly string[];
  reason: string;
  upstream: string;
}

export interface SubjectResult {
  name: string;
  backend: string;
  runtime: string;
  transport: 'tcp' | 'ws';
  deviations: Deviation[] | null;
  error?: string;
  cells: Cell[];
}

export interface Proof {
  workload: ThroughputWorkload;
  transport: 'tcp' | 'ws';
  reference: number | null;
  fastest: { server: string; perSecond: number } | null;
  loadgenBusy: number | null;
  notBottleneck: boolean | null;
}

export interface Report {
  date: string;
  source: { commit: string | null; uncommittedPackages: boolean | null };
  command: string;
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  loadgen: {
    compiler: string | null;
    pinning: { server: number | null; loadgen: number | null };
    reference: Partial<Record<ThroughputWorkload, Partial<Record<'tcp' | 'ws', Side>>>>;
    proof: Proof[];
  };
  subjects: SubjectResult[];
  missing: string[];
  seconds: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function medianStat(rounds: Side['rounds']): Stat | null {
  const ok = rounds.filter((r): r is Stat => !('error' in r));
  if (ok.length === 0) return null;
  const of = (key: 'perSecond' | 'p50Us' | 'p99Us' | 'loadgenBusy') => median(ok.map((r) => r[key]));
  return {
    perSecond: of('perSecond'),
    p50Us: of('p50Us'),
    p99Us: of('p99Us'),
    loadgenBusy: of('loadgenBusy'),
    errors: ok.reduce((sum, r) => sum + r.errors, 0),
    wrongReplies: ok.reduce((sum, r) => sum + r.wrongReplies, 0),
    ...(ok[0]?.tlsSession ? { tlsSession: ok[0].tlsSession } : {}),
  };
}

export function throughputTargets(cell: Omit<ThroughputCell, 'targets'>): Target[] {
  const t = targets[cell.workload];
  if (t === null) return [];
  const { throughput, p99 } = cell.ratio;
  return [
    {
      name: `>= ${t.throughput}x`,
      value: throughput,
      met: throughput === null ? null : throughput >= t.throughput,
    },
    { name: `p99 <= ${t.p99}x`, value: p99, met: p99 === null ? null : p99 <= t.p99 },
  ];
}

export function idleTargets(comm: number | null, ratio: number | null): Target[] {
  return [
    { name: `<= ${targets.idle.kib} KiB`, value: comm, met: comm === null ? null : comm <= targets.idle.kib },
    {
      name: `<= ${targets.idle.ratio}x bare`,
      value: ratio,
      met: ratio === null ? null : ratio <= targets.idle.ratio,
    },
  ];
}

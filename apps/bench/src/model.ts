import type { IdleResult } from './measure.js';

export const workloadNames = ['rr', 'pipelined', '1k', 'idle', 'connect'] as const;
export type WorkloadName = (typeof workloadNames)[number];
export type ThroughputWorkload = Exclude<WorkloadName, 'idle'>;

/** What each workload asks of the load generator. */
export const workloadSpecs: Record<
  ThroughputWorkload,
  { mode: 'rr' | 'pipelined' | 'connect'; depth: number; lineBytes: number; unit: string; what: string }
> = {
  rr: {
    mode: 'rr',
    depth: 1,
    lineBytes: 0,
    unit: 'replies/s',
    what: 'request/response: each connection sends a line and waits for its reply',
  },
  pipelined: {
    mode: 'pipelined',
    depth: 16,
    lineBytes: 0,
    unit: 'replies/s',
    what: 'pipelined x16: 16 lines in flight per connection',
  },
  '1k': {
    mode: 'pipelined',
    depth: 16,
    lineBytes: 1024,
    unit: 'replies/s',
    what: '1 KiB lines, pipelined x16',
  },
  connect: {
    mode: 'connect',
    depth: 1,
    lineBytes: 0,
    unit: 'conn/s',
    what: 'connections opened per second: connect, one line, its reply, close',
  },
};

/** The targets of issue 7 that the data path is measured against. */
export const targets = {
  rr: { throughput: 0.95, p99: 1.25 },
  pipelined: { throughput: 0.8, p99: 1.25 },
  /** 1 KiB lines are pipelined too: the pipelined targets. */
  '1k': { throughput: 0.8, p99: 1.25 },
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

export type Cell = ThroughputCell | IdleCell;

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
  const of = (key: keyof Stat) => median(ok.map((r) => r[key]));
  return {
    perSecond: of('perSecond'),
    p50Us: of('p50Us'),
    p99Us: of('p99Us'),
    loadgenBusy: of('loadgenBusy'),
    errors: ok.reduce((sum, r) => sum + r.errors, 0),
    wrongReplies: ok.reduce((sum, r) => sum + r.wrongReplies, 0),
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

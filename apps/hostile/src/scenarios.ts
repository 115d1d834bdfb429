import type { BackendName } from './server.js';

/** The thresholds the scenarios hold the servers to. */
export const limits = {
  /** Slowloris: the probe's 99th percentile round trip. */
  p99Ms: 50,
  /** A client that never reads, a line that never ends: the server's RSS peak over its RSS before. */
  rssGrowthMiB: 64,
  /** At the descriptor limit: the server's CPU (utime + stime) over the measured window. */
  emfileCpuPercent: 10,
  emfileWindowMs: 3000,
  /** Descriptors after a scenario may exceed those before by this many. */
  fdSlack: 2,
  /** SIGTERM: the server exits within this. */
  exitMs: 10_000,
} as const;

export interface Scenario {
  readonly id: number;
  /** The name `--only` takes (the number works too), and the Python client's scenario. */
  readonly name: string;
  readonly title: string;
  readonly client: string;
  /** What the client is told: counts scaled down with `--short`. */
  params(short: boolean): Record<string, number>;
  /** The client's time limit. */
  timeoutMs(short: boolean): number;
  /** The server's `ulimit -n` (default: the hard limit). */
  readonly fdLimit?: number;
  /** Why the scenario means nothing for a backend, or null. */
  notApplicable?(backend: BackendName): string | null;
}

const s = (short: boolean, full: number, scaled: number) => (short ? scaled : full);

export const scenarios: readonly Scenario[] = [
  {
    id: 1,
    name: 'idle',
    title: 'idle connections, then a fresh client',
    client: 'idle',
    params: (short) => ({ n: s(short, 10_000, 1000), hold: 1 }),
    timeoutMs: (short) => s(short, 300_000, 90_000),
  },
  {
    id: 2,
    name: 'reset',
    title: 'connect, then reset (SO_LINGER 0)',
    client: 'reset',
    params: (short) => ({ n: s(short, 5000, 500) }),
    timeoutMs: (short) => s(short, 300_000, 90_000),
  },
  {
    id: 3,
    name: 'close',
    title: 'connect, then close',
    client: 'close',
    params: (short) => ({ n: s(short, 5000, 500) }),
    timeoutMs: (short) => s(short, 300_000, 90_000),
  },
  {
    id: 4,
    name: 'slowloris',
    title: 'slowloris: 1 byte/s per client, probe p99',
    client: 'slowloris',
    params: (short) => ({ n: s(short, 500, 100), seconds: s(short, 15, 5), p99ms: limits.p99Ms }),
    timeoutMs: (short) => s(short, 120_000, 60_000),
  },
  {
    id: 5,
    name: 'no-reader',
    title: 'a reader that never reads, lines keep coming',
    client: 'no-reader',
    // Not scaled down: fewer lines fit in the kernel's socket buffers and never reach backpressure.
    params: () => ({ lines: 1_000_000, stall: 3, hold: 2 }),
    timeoutMs: (short) => s(short, 120_000, 60_000),
  },
  {
    id: 6,
    name: 'long-line',
    title: 'a line of many MiB without newline',
    client: 'long-line',
    params: (short) => ({ mib: s(short, 50, 8) }),
    timeoutMs: (short) => s(short, 120_000, 60_000),
  },
  {
    id: 7,
    name: 'garbage',
    title: 'binary garbage, NUL, invalid UTF-8, BOM, CR-only',
    client: 'garbage',
    params: (short) => ({ garbage: s(short, 256 * 1024, 64 * 1024) }),
    timeoutMs: () => 90_000,
  },
  {
    id: 8,
    name: 'rst-mid-reply',
    title: 'RST while replies stream',
    client: 'rst-mid-reply',
    params: (short) => ({ n: s(short, 200, 50), lines: 2000, concurrency: 10 }),
    timeoutMs: (short) => s(short, 180_000, 60_000),
  },
  {
    id: 9,
    name: 'half-close',
    title: 'half-close: a line, then FIN; the reply still comes',
    client: 'half-close',
    params: () => ({ n: 3 }),
    timeoutMs: () => 60_000,
  },
  {
    id: 10,
    name: 'emfile',
    title: 'EMFILE: ulimit -n 256, clients hold connections',
    client: 'emfile',
    fdLimit: 256,
    params: (short) => ({ n: s(short, 1000, 400), connect_timeout: 3, hold: 4 }),
    timeoutMs: () => 90_000,
  },
  {
    id: 11,
    name: 'sigterm',
    title: 'SIGTERM under load: exit 0, port free',
    client: 'load',
    params: (short) => ({ n: s(short, 50, 20), seconds: 20 }),
    timeoutMs: () => 60_000,
  },
];

/** The scenarios `--only` names (numbers or names, comma-separated or repeated); all when none. */
export function selectScenarios(only: readonly string[]): Scenario[] {
  if (only.length === 0) return [...scenarios];
  const chosen = new Set<Scenario>();
  for (const word of only.flatMap((o) => o.split(',')).map((w) => w.trim())) {
    const found = scenarios.find((sc) => sc.name === word || String(sc.id) === word);
    if (!found) throw new Error(`unknown scenario "${word}": ${scenarios.map((sc) => sc.name).join(', ')}`);
    chosen.add(found);
  }
  return scenarios.filter((sc) => chosen.has(sc));
}

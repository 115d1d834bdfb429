import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The benchmark as CI runs it: tiny, on two backends; it must run and write its files. Nothing
// about speed is asserted: the scaling row's structure is (both workers listened, as the kernel
// shows, and both served), never its ratio.
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'comm-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { timeout: 110_000, killSignal: 'SIGINT' },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('pnpm bench --smoke', () => {
  it('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/--backends/);
    expect(stdout).toMatch(/--smoke/);
  });

  it('runs every talk/bare workload on node@20 and bun, prints the table, writes JSON and SVG', async () => {
    const subjects = ['node@20', 'bun'];
    const workloads = ['rr', 'pipelined', '1k', 'idle', 'connect'];
    const { code, stdout, stderr } = await runCli([
      '--smoke',
      '--backends',
      subjects.join(','),
      '--workloads',
      workloads.join(','),
      '--out',
      out,
    ]);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/\[\s*\d+s\] /);
    for (const s of subjects)
      for (const w of workloads.filter((w) => w !== 'idle'))
        expect(stdout).toMatch(new RegExp(`^${s}\\s+${w}\\s`, 'm'));
    expect(stdout).toMatch(/^loadgen rr \(tcp\): reference server/m);

    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
    expect(report.subjects.map((s: { name: string }) => s.name)).toEqual(subjects);
    expect(report.machine.cores).toBeGreaterThan(0);
    for (const subject of report.subjects) {
      expect(Array.isArray(subject.deviations)).toBe(true);
      expect(subject.cells.map((c: { workload: string }) => c.workload)).toEqual(workloads);
      for (const cell of subject.cells) {
        if (cell.kind === 'idle') {
          expect(typeof cell.comm.kibPerConnection).toBe('number');
          expect(typeof cell.bare.kibPerConnection).toBe('number');
        } else {
          expect(cell.comm.median.perSecond).toBeGreaterThan(0);
          expect(cell.bare.median.perSecond).toBeGreaterThan(0);
          expect(cell.comm.median.wrongReplies).toBe(0);
          expect(cell.bare.median.wrongReplies).toBe(0);
          expect(typeof cell.ratio.throughput).toBe('number');
        }
      }
    }
    const chart = readFileSync(join(out, 'latest.svg'), 'utf8');
    expect(chart).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(chart.trim().endsWith('</svg>')).toBe(true);
    for (const s of subjects) expect(chart).toContain(`>${s}</text>`);
    expect(existsSync(join(out, 'latest.md'))).toBe(true);
  }, 120_000);
});

describe('pnpm bench --smoke --workloads tls-rr,tls-pipelined', () => {
  it("each backend's talk server and its runtime's own TLS server answer over TLS, every reply right", async () => {
    const subjects = ['node@20', 'bun', 'deno', 'uws'];
    const workloads = ['tls-rr', 'tls-pipelined'];
    const dir = join(out, 'tls');
    mkdirSync(dir, { recursive: true });
    const { code, stdout, stderr } = await runCli([
      '--smoke',
      '--backends',
      subjects.join(','),
      '--workloads',
      workloads.join(','),
      '--out',
      dir,
    ]);
    expect(code, stderr).toBe(0);
    for (const s of subjects)
      for (const w of workloads) expect(stdout).toMatch(new RegExp(`^${s}\\s+${w}\\s+\\d`, 'm'));
    // Both servers said they serve TLS as they started.
    expect(stderr).toMatch(/both over TLS/);
    const report = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
    expect(report.subjects.map((s: { name: string }) => s.name)).toEqual(subjects);
    // The reference server, over TLS too, on both transports.
    for (const w of workloads)
      for (const transport of ['tcp', 'ws'])
        expect(report.loadgen.reference[w][transport].median.perSecond, `${w} ${transport}`).toBeGreaterThan(
          0,
        );
    for (const subject of report.subjects) {
      expect(subject.cells.map((c: { workload: string }) => c.workload)).toEqual(workloads);
      for (const cell of subject.cells) {
        const what = `${subject.name} ${cell.workload}`;
        expect(cell.kind).toBe('throughput');
        expect(cell.tls, what).toBe(true);
        expect(cell.unsupported ?? null, what).toBeNull();
        // The load generator verified each server's certificate for localhost against the run's CA
        // and counted every connection that failed: none did, every reply was the right one, and
        // every round finished handshakes (the protocol and cipher are in its result).
        for (const side of [cell.comm, cell.bare]) {
          for (const round of side.rounds) expect(round.error, what).toBeUndefined();
          expect(side.median.perSecond, what).toBeGreaterThan(0);
          expect(side.median.errors, what).toBe(0);
          expect(side.median.wrongReplies, what).toBe(0);
          // What the handshake agreed, as the load generator saw it.
          expect(side.median.tlsSession, what).toMatch(/^TLSv1\.[23] [A-Z0-9_-]+$/);
        }
      }
    }
    // The run's certificates are gone.
    expect(readdirSync(tmpdir()).filter((name) => name.startsWith('comm-bench-tls-'))).toEqual([]);
  }, 120_000);
});

interface Share {
  pid: number;
  accepted: number;
  cpu: number;
}
interface ScalingJson {
  kind: string;
  load: { workload: string; connections: number };
  one: { rounds: { perSecond?: number; wrongReplies?: number; error?: string }[]; shares: Share[][] };
  two: { rounds: { perSecond?: number; wrongReplies?: number; error?: string }[]; shares: Share[][] };
  listeners: { one: { inode: number; pids: number[] }[]; two: { inode: number; pids: number[] }[] };
  acceptedTotal: { one: number[]; two: number[] };
  unsupported: string | null;
  fault: string | null;
}

/** Whether a process is still there as a scaling worker (a pid reused since is not one). */
function workerAlive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('scaling-worker');
  } catch {
    return false;
  }
}

describe('pnpm bench --smoke --workloads scaling', () => {
  it('both workers listen (kernel) and both serve on bun and node@24; node@20 is declared unavailable', async () => {
    const subjects = ['node@20', 'bun', 'node@24'];
    const dir = join(out, 'scaling');
    mkdirSync(dir, { recursive: true });
    const { code, stdout, stderr } = await runCli([
      '--smoke',
      '--rounds',
      '2',
      '--workloads',
      'scaling',
      '--backends',
      subjects.join(','),
      '--out',
      dir,
    ]);
    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(/FAULT/);
    for (const s of subjects) expect(stdout).toMatch(new RegExp(`^${s}\\s+pipelined x\\d+\\s`, 'm'));
    // Node 20 has no reusePort: @comm/node declares it, and its worker is refused with a condition.
    expect(stdout).toMatch(/^node@20 .*not available: .*Node 20/m);

    const report = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
    expect(report.subjects.map((s: { name: string }) => s.name)).toEqual(subjects);
    for (const subject of report.subjects) {
      const [cell, ...rest] = subject.cells as ScalingJson[];
      expect(rest).toEqual([]);
      expect(cell?.kind).toBe('scaling');
      if (!cell) continue;
      expect(cell.fault, subject.name).toBeNull();
      if (subject.name === 'node@20') {
        expect(cell.unsupported).toMatch(/reuseport needs Node/);
        expect(cell.one.rounds).toEqual([]);
        continue;
      }
      expect(cell.unsupported, subject.name).toBeNull();
      const single = cell.one.shares.flat();
      const pair = cell.two.shares.flat();
      const singlePid = single[0]?.pid;
      const pairPids = [...new Set(pair.map((s) => s.pid))];
      expect(new Set(single.map((s) => s.pid)).size).toBe(1);
      expect(pairPids).toHaveLength(2);
      // The kernel: one listening socket on the single worker's port, two on the pair's, each
      // held by one of its workers.
      expect(cell.listeners.one.map((s) => s.pids)).toEqual([[singlePid]]);
      expect(cell.listeners.two).toHaveLength(2);
      expect(cell.listeners.two.flatMap((s) => s.pids).sort()).toEqual([...pairPids].sort());
      // Every round of the pair: both workers accepted connections, and between them all of them.
      expect(cell.two.shares).toHaveLength(2);
      for (const shares of cell.two.shares) {
        expect(shares).toHaveLength(2);
        for (const share of shares) expect(share.accepted, subject.name).toBeGreaterThan(0);
        expect(shares.reduce((sum, share) => sum + share.accepted, 0)).toBe(cell.load.connections);
      }
      for (const shares of cell.one.shares)
        expect(shares.map((s) => s.accepted)).toEqual([cell.load.connections]);
      // What each said when it was stopped.
      for (const n of [...cell.acceptedTotal.one, ...cell.acceptedTotal.two]) expect(n).toBeGreaterThan(0);
      for (const side of [cell.one, cell.two])
        for (const round of side.rounds) {
          expect(round.error).toBeUndefined();
          expect(round.perSecond).toBeGreaterThan(0);
          expect(round.wrongReplies).toBe(0);
        }
      for (const pid of [...pairPids, singlePid as number]) expect(workerAlive(pid)).toBe(false);
    }
  }, 120_000);
});

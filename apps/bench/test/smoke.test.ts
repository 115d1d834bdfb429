import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The benchmark as CI runs it: tiny, on two backends; it must run and write its files. Nothing
// about speed is asserted.
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

  it('runs every workload on node@20 and bun, prints the table, writes JSON and SVG', async () => {
    const subjects = ['node@20', 'bun'];
    const workloads = ['rr', 'pipelined', '1k', 'idle', 'connect'];
    const { code, stdout, stderr } = await runCli([
      '--smoke',
      '--backends',
      subjects.join(','),
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

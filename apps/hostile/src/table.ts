import { limits } from './scenarios.js';
import type { Row } from './suite.js';

const fmt = (n: number | null, digits = 0) => (n === null ? '-' : n.toFixed(digits));

/** The rows of one backend as a text table: one line per scenario, then the reasons of each FAIL. */
export function formatTable(rows: readonly Row[], title: string): string {
  const header = [
    '#',
    'scenario',
    'result',
    'time s',
    'replies',
    'RSS MiB before/peak/after',
    'fds before/after',
    'stderr',
    'notes',
  ];
  const body = rows.map((r) => [
    String(r.scenario.id),
    r.scenario.name,
    r.status,
    fmt(r.seconds, 1),
    r.replies || '-',
    r.status === 'n/a' ? '-' : `${fmt(r.rssBefore)}/${fmt(r.rssPeak)}/${fmt(r.rssAfter)}`,
    r.status === 'n/a' ? '-' : `${fmt(r.fdsBefore)}/${fmt(r.fdsAfter)}`,
    r.status === 'n/a' ? '-' : String(r.stderrLines),
    r.status === 'n/a' ? `n/a: ${r.note}` : r.note,
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((b) => (i === 8 ? 0 : (b[i] as string).length))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const out = [title, line(header), ...body.map(line)];
  for (const r of rows)
    for (const why of r.failures) out.push(`  FAIL ${r.backend} ${r.scenario.id} ${r.scenario.name}: ${why}`);
  return out.join('\n');
}

export const thresholds = `thresholds: slowloris probe p99 < ${limits.p99Ms} ms; RSS peak <= before + ${limits.rssGrowthMiB} MiB (no-reader, long-line); CPU < ${limits.emfileCpuPercent}% over ${limits.emfileWindowMs / 1000} s at ulimit -n 256; fds after <= before + ${limits.fdSlack}; SIGTERM: exit 0 within ${limits.exitMs / 1000} s, port free`;

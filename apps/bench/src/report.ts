import type { IdleResult } from './measure.js';
import type { IdleCell, IdleSide, Report, ScalingCell, Target, ThroughputCell } from './model.js';
import { workloadSpecs } from './model.js';

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function rate(value: number | undefined | null, unit: string): string {
  return value === undefined || value === null ? '-' : `${int.format(value)} ${unit}`;
}
function ms(us: number | undefined | null): string {
  return us === undefined || us === null ? '-' : `${(us / 1000).toFixed(2)} ms`;
}
function x(value: number | null): string {
  return value === null || !Number.isFinite(value) ? '-' : `${value.toFixed(2)}x`;
}
function pct(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value)
    ? '-'
    : `${Math.round(value * 100)}%`;
}
function kib(value: number | null): string {
  return value === null || !Number.isFinite(value) ? '-' : `${value.toFixed(1)} KiB`;
}
function verdicts(targets: Target[]): string {
  if (targets.length === 0) return '(no target)';
  return targets.map((t) => `${t.name}: ${t.met === null ? '?' : t.met ? 'yes' : 'NO'}`).join(', ');
}

/** One row per subject and workload (the scaling row has a table of its own: scalingRows). */
export function rows(report: Report): string[][] {
  const header = [
    'subject',
    'workload',
    'talk (@comm)',
    'bare runtime',
    'comm/bare',
    'p99 talk',
    'p99 bare',
    'p99 ratio',
    'targets met',
  ];
  const out = [header];
  for (const subject of report.subjects) {
    if (subject.error && subject.cells.length === 0) {
      out.push([subject.name, '-', `error: ${subject.error}`, '', '', '', '', '', '']);
      continue;
    }
    for (const cell of subject.cells)
      if (cell.kind !== 'scaling') out.push([subject.name, ...cellColumns(cell)]);
  }
  return out;
}

function cellColumns(cell: ThroughputCell | IdleCell): string[] {
  if (cell.kind === 'idle') {
    const side = (s: IdleSide) => {
      if (s.kibPerConnection === null)
        return `error: ${(s.rounds.find((r) => 'error' in r) as { error: string } | undefined)?.error ?? '?'}`;
      const short = s.rounds.filter((r): r is IdleResult => !('error' in r) && r.established < r.connections);
      const least = short.length ? Math.min(...short.map((r) => r.established)) : null;
      return `${kib(s.kibPerConnection)}/conn${least === null ? '' : ` (only ${int.format(least)} opened in time)`}`;
    };
    return [
      `idle ${int.format(cell.connections)}`,
      side(cell.comm),
      side(cell.bare),
      x(cell.ratio),
      '',
      '',
      '',
      verdicts(cell.targets),
    ];
  }
  if (cell.unsupported) return [cell.workload, `not available: ${cell.unsupported}`, '', '', '', '', '', ''];
  const unit = workloadSpecs[cell.workload].unit;
  const side = (s: typeof cell.comm) =>
    s.median
      ? s.median.perSecond > 0
        ? rate(s.median.perSecond, unit)
        : `0 ${unit}: none completed`
      : `error: ${(s.rounds.find((r) => 'error' in r) as { error?: string } | undefined)?.error ?? '?'}`;
  return [
    cell.workload,
    side(cell.comm),
    side(cell.bare),
    x(cell.ratio.throughput),
    ms(cell.comm.median?.perSecond ? cell.comm.median.p99Us : null),
    ms(cell.bare.median?.perSecond ? cell.bare.median.p99Us : null),
    x(cell.ratio.p99),
    verdicts(cell.targets),
  ];
}

function middle(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The CPU use of a side's workers (median over the rounds, per worker) as `97%` or `71% + 69%`. */
function workerCpu(side: ScalingCell['one']): string {
  const rounds = side.shares.filter((s) => s.length > 0);
  const n = Math.max(0, ...rounds.map((s) => s.length));
  if (n === 0) return '-';
  return Array.from({ length: n }, (_, i) =>
    pct(middle(rounds.flatMap((s) => (s[i] ? [s[i].cpu] : [])))),
  ).join(' + ');
}

/** The ratio of a scaling cell, with the spread of its rounds' own ratios, or why there is none. */
export function scalingRatio(cell: ScalingCell): string {
  if (cell.fault !== null) return `FAULT: ${cell.fault}`;
  if (cell.unsupported !== null) return `not available: ${cell.unsupported}`;
  if (cell.ratio.throughput === null) return '-';
  const spread =
    cell.ratio.min === null || cell.ratio.max === null
      ? ''
      : ` (rounds ${cell.ratio.min.toFixed(2)}-${cell.ratio.max.toFixed(2)})`;
  return `${x(cell.ratio.throughput)}${spread}`;
}

/**
 * The scaling table: per subject, 1 worker and 2 workers sharing a port (reuseport), the ratio with
 * the spread over rounds, the connections each of the 2 workers accepted in each round, and the CPU
 * use of the workers, of the load generator, and of the rest of the machine.
 */
export function scalingRows(report: Report): string[][] {
  const cells = report.subjects.flatMap((s) =>
    s.cells.filter((c): c is ScalingCell => c.kind === 'scaling').map((c) => [s.name, c] as const),
  );
  const load = cells[0]?.[1].load;
  const out = [
    [
      'subject',
      `scaling${load ? ` (${load.workload}, ${int.format(load.connections)} conns, unpinned)` : ''}`,
      '1 worker',
      '2 workers',
      '2w/1w',
      'p99 1w',
      'p99 2w',
      'accepted by the 2 workers, per round',
      'worker CPU 1w',
      'worker CPU 2w',
      'loadgen CPU 1w / 2w',
      'rest of machine (max)',
    ],
  ];
  for (const [name, cell] of cells) {
    const unit = workloadSpecs[cell.load.workload].unit;
    const side = (s: ScalingCell['one']) =>
      s.median
        ? `${rate(s.median.perSecond, unit)}${s.median.errors || s.median.wrongReplies ? ` (${s.median.errors} errors, ${s.median.wrongReplies} wrong replies)` : ''}`
        : s.rounds.length
          ? `error: ${(s.rounds.find((r) => 'error' in r) as { error?: string } | undefined)?.error ?? '?'}`
          : '-';
    const blocked = cell.fault !== null || cell.unsupported !== null;
    out.push([
      name,
      `${cell.load.workload} x${cell.load.connections}`,
      blocked ? '-' : side(cell.one),
      blocked ? '-' : side(cell.two),
      scalingRatio(cell),
      blocked ? '-' : ms(cell.one.median?.perSecond ? cell.one.median.p99Us : null),
      blocked ? '-' : ms(cell.two.median?.perSecond ? cell.two.median.p99Us : null),
      cell.two.shares
        .filter((s) => s.length > 0)
        .map((s) => s.map((w) => int.format(w.accepted)).join('+'))
        .join(', ') || '-',
      workerCpu(cell.one),
      workerCpu(cell.two),
      `${pct(cell.one.median?.loadgenBusy)} / ${pct(cell.two.median?.loadgenBusy)}`,
      pct(
        [...cell.one.others, ...cell.two.others].reduce<number | null>(
          (most, o) => (o === null ? most : Math.max(most ?? 0, o)),
          null,
        ),
      ),
    ]);
  }
  return out;
}

/** Columns padded to their widest cell. */
export function table(rowsOf: string[][], markdown = false): string {
  if (markdown) {
    const [head, ...body] = rowsOf;
    const line = (r: string[]) => `| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
    return [line(head ?? []), `|${(head ?? []).map(() => '---').join('|')}|`, ...body.map(line)].join('\n');
  }
  const widths = (rowsOf[0] ?? []).map((_, i) => Math.max(...rowsOf.map((r) => (r[i] ?? '').length)));
  return rowsOf
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The lines after the table: the load generator's proof, deviations, what is missing. */
export function notes(report: Report): string[] {
  const lines: string[] = [];
  const { commit, uncommittedPackages } = report.source;
  const onlyScaling = report.subjects.every((s) => s.cells.every((c) => c.kind === 'scaling'));
  const pinning = onlyScaling
    ? 'nothing pinned (the scaling row)'
    : `pinning ${report.loadgen.pinning.server === null ? 'none' : `server CPU ${report.loadgen.pinning.server}, loadgen CPU ${report.loadgen.pinning.loadgen}`}`;
  lines.push(
    `measured: ${commit ? `commit ${commit.slice(0, 12)}` : 'no git commit'}${uncommittedPackages ? ' with uncommitted changes in packages/ or apps/talk' : ''}, ${report.date}, ${String(report.machine.cpu)} x ${String(report.machine.cores)}, ${pinning}`,
  );
  for (const p of report.loadgen.proof) {
    const unit = workloadSpecs[p.workload].unit;
    const busy = p.loadgenBusy === null ? null : Math.round(p.loadgenBusy * 100);
    const verdict =
      p.notBottleneck === null
        ? 'not shown'
        : p.notBottleneck
          ? 'the loadgen drove the reference faster: not the bottleneck'
          : `NOT shown by the reference (it was no faster this time)${busy !== null && busy < 90 ? `; the loadgen had spare CPU (${busy}% busy) while driving the fastest server` : ''}`;
    lines.push(
      `loadgen ${p.workload} (${p.transport}): reference server ${rate(p.reference, unit)}, fastest backend server ${p.fastest ? `${rate(p.fastest.perSecond, unit)} (${p.fastest.server}, loadgen ${busy}% busy)` : '-'}: ${verdict}`,
    );
  }
  if (report.subjects.some((s) => s.cells.some((c) => c.kind === 'scaling')))
    lines.push(
      `scaling: nothing pinned, on either side (two workers and the load generator share the ${String(report.machine.cores)} CPUs); every worker has reuseport; worker CPU: its CPU time (all threads) over the round's wall time, median of the rounds, 100% is one CPU; loadgen CPU: the load generator's, likewise; rest of machine: the CPU everything else used meanwhile (/proc/stat), the most of any round`,
    );
  // Over TLS: what each server agreed with the load generator (the first handshake of each side).
  const sessions = report.subjects.flatMap((s) =>
    s.cells.flatMap((c) =>
      c.kind === 'throughput' && c.tls && !c.unsupported
        ? [
            { what: `${s.name} ${c.workload} talk`, session: c.comm.median?.tlsSession ?? null },
            { what: `${s.name} ${c.workload} bare`, session: c.bare.median?.tlsSession ?? null },
          ]
        : [],
    ),
  );
  const agreed = [...new Set(sessions.map((s) => s.session))];
  if (agreed.length === 1 && agreed[0] !== null)
    lines.push(`TLS: every server agreed ${agreed[0]} with the load generator`);
  else if (sessions.length > 0)
    lines.push(`TLS: ${sessions.map((s) => `${s.what} ${s.session ?? 'no handshake'}`).join(', ')}`);
  for (const s of report.subjects) {
    if (s.deviations === null) lines.push(`${s.name} (${s.runtime}): declared deviations unknown`);
    else if (s.deviations.length === 0) lines.push(`${s.name} (${s.runtime}): no declared deviations`);
    else
      lines.push(
        `${s.name} (${s.runtime}): declared deviations ${s.deviations.map((d) => d.cases.join('+')).join(', ')}`,
      );
  }
  for (const m of report.missing) lines.push(`not measured: ${m}`);
  return lines;
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A bar chart: per workload a panel, per subject a bar of comm/bare (throughput; KiB per idle
 * connection for idle), the target as a dashed line; green meets it, red does not, grey has none.
 */
export function svg(report: Report): string {
  const subjects = report.subjects.map((s) => s.name);
  const workloads = [...new Set(report.subjects.flatMap((s) => s.cells.map((c) => c.workload)))];
  const barW = 26;
  const gap = 8;
  const panelW = Math.max(140, subjects.length * (barW + gap) + 40);
  const plotH = 220;
  const top = 70;
  const left = 50;
  const width = left + workloads.length * panelW + 20;
  const height = top + plotH + 110;
  const values = report.subjects.flatMap((s) =>
    s.cells
      .map((c) => (c.kind === 'idle' ? c.ratio : c.ratio.throughput))
      .filter((v): v is number => v !== null && Number.isFinite(v)),
  );
  // Up to 3x: a bar beyond is cut at the top and labelled with its value.
  const maxY = Math.min(3.2, Math.max(2.2, ...values) * 1.05);
  const y = (v: number) => top + plotH - (Math.min(v, maxY) / maxY) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${xmlText(`@comm talk server / bare runtime per backend and workload, ${report.date.slice(0, 10)}`)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">@comm talk server / bare runtime, per backend and workload</text>`,
    `<text x="${left}" y="38">${xmlText(`${report.date.slice(0, 10)}, ${String(report.machine.cpu)}, ${String(report.machine.cores)} cores; throughput ratio (higher is better); idle: KiB per connection ratio (lower is better); scaling: 2 workers / 1 worker`)}</text>`,
    `<text x="${left}" y="54">${xmlText('bars: green meets the throughput target (idle: both memory targets), red misses it, grey has none; dashed line: the target; bars past 3x are cut')}</text>`,
  );
  for (let t = 0; t <= maxY; t += 0.5) {
    parts.push(
      `<line x1="${left - 4}" x2="${width - 20}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`,
      `<text x="${left - 8}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(1)}</text>`,
    );
  }
  workloads.forEach((workload, wi) => {
    const x0 = left + wi * panelW + 10;
    parts.push(
      `<text x="${x0 + (panelW - 20) / 2}" y="${top + plotH + 95}" text-anchor="middle" font-weight="bold">${xmlText(workload === 'idle' ? 'idle (memory)' : workload === 'scaling' ? 'scaling (2w/1w)' : workload)}</text>`,
    );
    let targetValue: number | null = null;
    report.subjects.forEach((s, si) => {
      const cell = s.cells.find((c) => c.workload === workload);
      if (!cell) return;
      const value = cell.kind === 'idle' ? cell.ratio : cell.ratio.throughput;
      const target = cell.kind === 'idle' ? cell.targets[1] : cell.targets[0];
      if (target) targetValue = Number(target.name.match(/[\d.]+/)?.[0]);
      const met =
        cell.kind === 'idle'
          ? cell.targets.every((t) => t.met === true)
            ? true
            : cell.targets.some((t) => t.met === false)
              ? false
              : null
          : (target?.met ?? null);
      const color = !target ? '#999' : met ? '#2a9d4b' : met === false ? '#d64545' : '#999';
      const bx = x0 + si * (barW + gap);
      if (value !== null && Number.isFinite(value)) {
        parts.push(
          `<rect x="${bx}" y="${y(value)}" width="${barW}" height="${top + plotH - y(value)}" fill="${color}"/>`,
          `<text x="${bx + barW / 2}" y="${y(value) - 4}" text-anchor="middle">${value.toFixed(2)}${value > maxY ? ' ^' : ''}</text>`,
        );
      } else parts.push(`<text x="${bx + barW / 2}" y="${top + plotH - 4}" text-anchor="middle">n/a</text>`);
      parts.push(
        `<text transform="translate(${bx + barW / 2 + 4},${top + plotH + 8}) rotate(60)" font-size="10">${xmlText(s.name)}</text>`,
      );
    });
    if (targetValue !== null)
      parts.push(
        `<line x1="${x0 - 4}" x2="${x0 + subjects.length * (barW + gap)}" y1="${y(targetValue)}" y2="${y(targetValue)}" stroke="black" stroke-dasharray="5,3"/>`,
      );
  });
  parts.push(
    `<line x1="${left}" x2="${width - 20}" y1="${top + plotH}" y2="${top + plotH}" stroke="black"/>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}

/**
 * One row per subject, for a README: each workload's comm/bare ratio with its verdict, memory per
 * idle connection, and the declared deviations beside them.
 */
export function summaryRows(report: Report): string[][] {
  const workloads = [...new Set(report.subjects.flatMap((s) => s.cells.map((c) => c.workload)))];
  const out = [
    [
      'backend',
      'runtime',
      ...workloads.map((w) => (w === 'idle' ? 'idle memory' : w)),
      'declared deviations',
    ],
  ];
  for (const s of report.subjects) {
    const cells = workloads.map((w) => {
      const cell = s.cells.find((c) => c.workload === w);
      if (!cell) return '-';
      const verdict =
        cell.targets.length === 0
          ? ''
          : cell.targets.every((t) => t.met === true)
            ? ' (met)'
            : ' (**missed**)';
      if (cell.kind === 'scaling')
        return cell.ratio.throughput === null
          ? scalingRatio(cell)
          : `${x(cell.ratio.throughput)} with 2 workers`;
      if (cell.kind === 'idle') {
        const short = cell.comm.rounds.some((r) => !('error' in r) && r.established < r.connections);
        return `${kib(cell.comm.kibPerConnection)}${short ? '*' : ''}, ${x(cell.ratio)} bare${verdict}`;
      }
      if (cell.unsupported) return 'not available (declared)';
      return `${x(cell.ratio.throughput)}, p99 ${x(cell.ratio.p99)}${verdict}`;
    });
    const deviations =
      s.deviations === null
        ? 'unknown'
        : s.deviations.length === 0
          ? 'none'
          : s.deviations.map((d) => d.cases.join(', ')).join('; ');
    out.push([s.name, s.runtime, ...cells, deviations]);
  }
  return out;
}

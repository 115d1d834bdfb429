import type { Outcome } from './suite.js';

/** Outcomes by backend name, then by case id. */
export type Matrix = Map<string, Map<string, Outcome>>;

function cell(outcome: Outcome | undefined): string {
  if (!outcome) return '-';
  if (outcome.status === 'pass') return 'pass';
  if (outcome.status === 'fail') return 'FAIL';
  return 'deviation';
}

/**
 * The case x backend table, then each failure and each deviation with its reason, then the
 * closing line `N passed, N failed` (deviations are counted apart, never as passes).
 */
export function formatMatrix(
  matrix: Matrix,
  caseIds: readonly string[],
  informational: ReadonlySet<string> = new Set(),
): string {
  const backends = [...matrix.keys()];
  const width = Math.max(4, ...caseIds.map((id) => id.length));
  const columns = backends.map((b) => Math.max(9, b.length));
  const lines: string[] = [];
  lines.push(['case'.padEnd(width), ...backends.map((b, i) => b.padEnd(columns[i] as number))].join('  '));
  lines.push(['-'.repeat(width), ...columns.map((w) => '-'.repeat(w))].join('  '));
  for (const id of caseIds) {
    const row = backends.map((b, i) => cell(matrix.get(b)?.get(id)).padEnd(columns[i] as number));
    lines.push([id.padEnd(width), ...row].join('  '));
  }
  let passed = 0;
  let failed = 0;
  let deviations = 0;
  const notes: string[] = [];
  for (const backend of backends) {
    const results = matrix.get(backend) as Map<string, Outcome>;
    let p = 0;
    let f = 0;
    let d = 0;
    for (const [id, outcome] of results) {
      if (outcome.status === 'pass') p++;
      else if (outcome.status === 'fail') {
        f++;
        const label = informational.has(backend) ? 'fail (informational)' : 'FAIL';
        notes.push(`${label} ${backend} ${id}: ${outcome.error.split('\n').slice(0, 4).join('\n    ')}`);
      } else {
        d++;
        notes.push(`deviation ${backend} ${id}: ${outcome.reason} (${outcome.upstream})`);
      }
    }
    const note = informational.has(backend) ? ' (informational: not counted below)' : '';
    lines.push(
      `${backend}: ${p} passed, ${f} failed, ${d} declared deviations, of ${results.size} cases${note}`,
    );
    if (note) continue;
    passed += p;
    failed += f;
    deviations += d;
  }
  if (notes.length) lines.push('', ...notes);
  lines.push('', `${passed} passed, ${failed} failed${deviations ? `, ${deviations} skipped` : ''}`);
  return lines.join('\n');
}

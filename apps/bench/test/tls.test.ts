import { describe, expect, it } from 'vitest';
import { TLS_CASE, tlsUnsupported } from '../src/model.js';
import { rows } from '../src/report.js';

// The TLS rows of a backend that declares it cannot serve TLS: not measured, and the table says why.
describe('TLS rows', () => {
  const declared = [{ cases: [TLS_CASE], reason: 'no TLS listener here', upstream: 'https://example.org/1' }];

  it('a backend that declares R22.talk-over-tls has no TLS figures, with its reason and link', () => {
    expect(tlsUnsupported('tls-rr', declared)).toBe(
      'R22.talk-over-tls declared: no TLS listener here (https://example.org/1)',
    );
    expect(tlsUnsupported('tls-pipelined', declared)).toMatch(/^R22\.talk-over-tls declared/);
    // Other deviations, none at all, or a row that is not over TLS: measured.
    expect(
      tlsUnsupported('tls-rr', [{ cases: ['R22.starttls-server'], reason: 'x', upstream: 'y' }]),
    ).toBeNull();
    expect(tlsUnsupported('tls-rr', null)).toBeNull();
    expect(tlsUnsupported('rr', declared)).toBeNull();
  });

  it('the table shows such a row as not available, in the columns of the others', () => {
    const side = { rounds: [], median: null };
    const table = rows({
      subjects: [
        {
          name: 'x',
          backend: 'x',
          runtime: 'x 1',
          transport: 'tcp',
          deviations: declared,
          cells: [
            {
              kind: 'throughput',
              workload: 'tls-rr',
              comm: side,
              bare: side,
              ratio: { throughput: null, p99: null },
              targets: [],
              tls: true,
              unsupported: tlsUnsupported('tls-rr', declared),
            },
          ],
        },
      ],
    } as unknown as Parameters<typeof rows>[0]);
    expect(table[1]).toEqual([
      'x',
      'tls-rr',
      'not available: R22.talk-over-tls declared: no TLS listener here (https://example.org/1)',
      '',
      '',
      '',
      '',
      '',
      '',
    ]);
    expect(table[1]).toHaveLength((table[0] as string[]).length);
  });
});

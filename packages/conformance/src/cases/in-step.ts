/**
 * Flow and speed (contract section 6), R16d: after a line longer than the limit, the stream stays
 * in step with its peer: one RangeError, the rest of that line discarded as it arrives, then the
 * next line.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { Connection } from '@comm/core/backend';
import { defineCase, within } from '../suite.js';
import { KiB, MiB, serve, stream } from './helpers.js';

/** Reads lines until end of file, a rejection recorded as its class name, at most `n` of them. */
async function linesAndRejections(
  s: { readLine(): Promise<string | null> },
  n: number,
): Promise<Array<string | null>> {
  const seen: Array<string | null> = [];
  for (let i = 0; i < n; i++) {
    try {
      const line = await s.readLine();
      seen.push(line);
      if (line === null) break;
    } catch (error) {
      seen.push(`<${(error as Error).name}>`);
    }
  }
  return seen;
}

defineCase(
  'R16d.next-line-after-long-line',
  'after 2,000,000 bytes without a newline then "\\nhello\\nworld\\n", readLine rejects once, then gives hello and world',
  async (t) => {
    const { port, result } = await serve(t, async (h: Connection) => linesAndRejections(stream(t, h), 5));
    const client = await t.connect(port);
    for (let sent = 0; sent < 2_000_000; sent += 100_000) await client.write(Buffer.alloc(100_000, 0x58));
    await client.write('\nhello\nworld\n');
    client.end();
    assert.deepEqual(await result(0, 15_000), ['<RangeError>', 'hello', 'world', null]);
  },
  20_000,
);

defineCase(
  'R16d.whole-long-line-buffered',
  'a too-long line that arrives whole with the lines after it costs only itself: the next readLine gives the next line',
  async (t) => {
    const { port, result } = await serve(t, async (h: Connection) =>
      linesAndRejections(stream(t, h, { lineLimit: 1024 }), 5),
    );
    const client = await t.connect(port);
    await client.write(`short\n${'y'.repeat(4000)}\nnext\n${'z'.repeat(1024)}\nlast`);
    client.end();
    assert.deepEqual(await result(0, 10_000), [
      'short',
      '<RangeError>',
      'next',
      `${'z'.repeat(1024)}`,
      'last',
    ]);
  },
  15_000,
);

defineCase(
  'R16d.discarding-holds-no-memory',
  "the rest of a too-long line is dropped as it arrives: 32 MiB of it never raise the stream's unread bytes past one line limit",
  async (t) => {
    const { port, result } = await serve(t, async (h: Connection) => {
      const s = stream(t, h, { lineLimit: 4 * KiB });
      await assert.rejects(async () => s.readLine(), RangeError);
      let most = 0;
      const sampler = setInterval(() => {
        most = Math.max(most, s.unread);
      }, 5);
      try {
        const line = await s.readLine();
        most = Math.max(most, s.unread);
        return { line, most };
      } finally {
        clearInterval(sampler);
        await s.close({ abort: true });
      }
    });
    const client = await t.connect(port);
    for (let sent = 0; sent < 32 * MiB; sent += MiB) await client.write(Buffer.alloc(MiB, 0x2d));
    await client.write('\nafter\n');
    const { line, most } = (await result(0, 30_000)) as { line: string; most: number };
    assert.equal(line, 'after');
    assert.ok(most <= 4 * KiB + 64 * KiB, `the stream held ${most} unread bytes while discarding`);
  },
  40_000,
);

defineCase(
  'R16d.end-of-file-while-discarding',
  'a too-long line cut off by the end of the input is dropped whole: readLine gives null, not its tail',
  async (t) => {
    const { port, result } = await serve(t, async (h: Connection) =>
      linesAndRejections(stream(t, h, { lineLimit: 1024 }), 4),
    );
    const client = await t.connect(port);
    await client.write('w'.repeat(10_000));
    client.end();
    assert.deepEqual(await within(result(0, 10_000), 12_000, 'the handler'), ['<RangeError>', null]);
  },
  15_000,
);

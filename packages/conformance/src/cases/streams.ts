/**
 * Streams and the client (contract section 3), R16: `SocketStream` directions, text and bytes on
 * one stream, `readLine`, read and write timeouts, `forceOutput` and `finishOutput`, backpressure,
 * the line limit, `close`. What section 6 adds is in flow.ts (R16a, R16b), utf8.ts (R16c) and
 * in-step.ts (R16d).
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { defineCase, within } from '../suite.js';
import {
  charReader,
  gate,
  KiB,
  MiB,
  readAllLines,
  serve,
  settle,
  stream,
  writeUntilStuck,
} from './helpers.js';

/** What a stream may take from a writer while its peer reads nothing for a second (R16 backpressure). */
const BOUND = 16 * MiB;

// ---- R16: SocketStream ----

defineCase(
  'R16.read-line-newlines',
  'readLine strips \\n and \\r\\n and gives null at end of file',
  async (t) => {
    const { port, result } = await serve(t, [async (h) => readAllLines(stream(t, h))]);
    const client = await t.connect(port);
    await client.write('one\ntwo\r\n\nthree\n');
    client.end();
    assert.deepEqual(await result(), ['one', 'two', '', 'three', null]);
  },
);

defineCase(
  'R16.read-line-unterminated',
  'readLine returns an unterminated last line at end of file, then null',
  async (t) => {
    const { port, result } = await serve(t, [async (h) => readAllLines(stream(t, h))]);
    const client = await t.connect(port);
    await client.write('first\nlast');
    client.end();
    assert.deepEqual(await result(), ['first', 'last', null]);
  },
);

defineCase(
  'R16.read-char-utf8-split',
  'readChar decodes UTF-8 characters split across TCP writes',
  async (t) => {
    const { port, result } = await charReader(t);
    const client = await t.connect(port);
    client.setNoDelay(true);
    // 'é€😀a' is c3 a9 | e2 82 ac | f0 9f 98 80 | 61: every piece but the last ends inside a character.
    const pieces = [[0xc3], [0xa9, 0xe2], [0x82], [0xac, 0xf0, 0x9f], [0x98, 0x80, 0x61]];
    for (const piece of pieces) {
      await client.write(Uint8Array.from(piece));
      await t.sleep(30);
    }
    client.end();
    assert.deepEqual(await result(), ['é', '€', '😀', 'a', null]);
  },
);

defineCase('R16.read-byte', 'readByte gives each byte (0-255), then null at end of file', async (t) => {
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h, { elementType: 'unsigned-byte' });
      const bytes: Array<number | null> = [];
      for (let i = 0; i < 20; i++) {
        const b = await s.readByte();
        bytes.push(b);
        if (b === null) break;
      }
      return bytes;
    },
  ]);
  const client = await t.connect(port);
  await client.write(Uint8Array.from([0, 255, 10, 128, 0xc3]));
  client.end();
  assert.deepEqual(await result(), [0, 255, 10, 128, 0xc3, null]);
});

defineCase('R16.text-and-bytes-mixed', 'text and bytes mix on one stream, reading and writing', async (t) => {
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h);
      const got: unknown[] = [];
      got.push(await s.readLine());
      got.push(await s.readByte());
      const two = new Uint8Array(2);
      got.push(await s.readSequence(two), [...two]);
      got.push(await s.readLine());
      got.push(await s.readByte());
      await s.writeLine('text');
      await s.writeByte(0);
      await s.writeSequence([1, 2, 255]);
      await s.writeChar('ü');
      await s.writeString('end');
      await s.close();
      return got;
    },
  ]);
  const client = await t.connect(port);
  await client.write(
    Buffer.concat([
      Buffer.from('hello\n'),
      Buffer.from([1, 2, 3]),
      Buffer.from('é world\r\n'),
      Buffer.from([255]),
    ]),
  );
  assert.deepEqual(await result(), ['hello', 1, 2, [2, 3], 'é world', 255]);
  const expected = Buffer.concat([Buffer.from('text\n'), Buffer.from([0, 1, 2, 255]), Buffer.from('üend')]);
  assert.deepEqual(await within(client.readAll(), 5000, 'the end of the reply'), expected);
});

defineCase('R16.read-sequence-short', 'readSequence reports a short count at end of file', async (t) => {
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h);
      const target = new Uint8Array(16).fill(0xee);
      const end = await s.readSequence(target, 2, 16);
      const again = await s.readSequence(target, 0, 4);
      return { end, again, target: [...target] };
    },
  ]);
  const client = await t.connect(port);
  const data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  await client.write(Uint8Array.from(data));
  client.end();
  assert.deepEqual(await result(), {
    end: 12,
    again: 0,
    target: [0xee, 0xee, ...data, 0xee, 0xee, 0xee, 0xee],
  });
});

defineCase(
  'R16.read-sequence-fills',
  'readSequence fills the range from several TCP segments without waiting for end of file',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        const target = new Uint8Array(12);
        const end = await s.readSequence(target);
        await s.writeLine('done');
        await s.finishOutput();
        return { end, target: [...target] };
      },
    ]);
    const client = await t.connect(port);
    client.setNoDelay(true);
    await client.write(Uint8Array.from([1, 2, 3, 4, 5]));
    await t.sleep(50);
    await client.write(Uint8Array.from([6, 7, 8, 9, 10, 11, 12, 13]));
    // The client keeps its side open: readSequence must return once the range is full.
    assert.equal(await within(client.readLine(), 5000, 'the reply after readSequence'), 'done');
    assert.deepEqual(await result(), { end: 12, target: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] });
  },
);

defineCase(
  'R16.direction-input-refuses-writes',
  'a stream with direction input reads, and refuses writes with an error',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h, { direction: 'input' });
        const line = await s.readLine();
        await assert.rejects(async () => s.writeLine('no'), Error, 'writeLine on an input stream');
        await assert.rejects(async () => s.writeByte(1), Error, 'writeByte on an input stream');
        await assert.rejects(async () => s.writeSequence([1, 2]), Error, 'writeSequence on an input stream');
        await s.finishOutput().catch(() => {});
        await s.close();
        return line;
      },
    ]);
    const client = await t.connect(port);
    await client.writeLine('hello');
    assert.equal(await result(), 'hello');
    assert.equal(
      (await within(client.readAll(), 5000, 'the end of the connection')).length,
      0,
      'nothing was sent',
    );
  },
);

defineCase(
  'R16.direction-output-refuses-reads',
  'a stream with direction output writes, and refuses reads with an error',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h, { direction: 'output' });
        await assert.rejects(async () => s.readLine(), Error, 'readLine on an output stream');
        await assert.rejects(async () => s.readChar(), Error, 'readChar on an output stream');
        await assert.rejects(async () => s.readByte(), Error, 'readByte on an output stream');
        await assert.rejects(
          async () => s.readSequence(new Uint8Array(4)),
          Error,
          'readSequence on an output stream',
        );
        await s.writeLine('out only');
        await s.close();
        return 'ok';
      },
    ]);
    const client = await t.connect(port);
    await client.writeLine('ignored');
    assert.equal(await result(), 'ok');
    assert.equal(await client.readLine(), 'out only');
  },
);

defineCase(
  'R16.read-timeout',
  'readTimeout seconds without input make readLine see end of file; later data is still read',
  async (t) => {
    const firstNull = settle<number>();
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h, { readTimeout: 0.2 });
        const started = performance.now();
        const first = await s.readLine();
        firstNull.resolve(performance.now() - started);
        if (first !== null) return { first };
        // The data the case sends once it has seen the timeout.
        for (let i = 0; i < 100; i++) {
          const line = await s.readLine();
          if (line !== null) return { first, later: line };
        }
        return { first, later: null };
      },
    ]);
    const client = await t.connect(port);
    const elapsed = await within(firstNull.promise, 5000, 'readLine with readTimeout 0.2 s to return');
    assert.ok(
      elapsed >= 150,
      `readLine returned after ${elapsed.toFixed(0)} ms, before the 0.2 s readTimeout`,
    );
    await client.writeLine('later');
    assert.deepEqual(await result(), { first: null, later: 'later' });
  },
);

defineCase(
  'R16.write-timeout',
  'a write the peer does not take within writeTimeout seconds fails, instead of hanging',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => writeUntilStuck(stream(t, h, { writeTimeout: 0.5 }), 32 * MiB),
    ]);
    const client = await t.connect(port);
    client.pause();
    const { written, error, lastCallMs } = (await result(0, 12_000)) as Awaited<
      ReturnType<typeof writeUntilStuck>
    >;
    assert.ok(
      error instanceof Error,
      `the writes to a peer that reads nothing did not fail (${written} bytes written)`,
    );
    assert.ok(written < 32 * MiB, 'not everything was written');
    assert.ok(
      lastCallMs >= 400,
      `the failing write failed after ${lastCallMs.toFixed(0)} ms, before writeTimeout`,
    );
    assert.ok(
      lastCallMs < 5500,
      `the failing write took ${lastCallMs.toFixed(0)} ms, far beyond writeTimeout 0.5 s`,
    );
  },
  20_000,
);

defineCase(
  'R16.backpressure-bounded',
  'writing to a peer that reads nothing waits: what the stream takes stays bounded, and all of it arrives',
  async (t) => {
    let accepted = 0;
    let stop = false;
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        const outcome = await writeUntilStuck(
          s,
          // A stop well past the bound, so that a sender that never waits cannot run for ever.
          3 * BOUND,
          () => stop,
          (n) => {
            accepted = n;
          },
        );
        await s.close();
        return outcome;
      },
    ]);
    const client = await t.connect(port);
    client.pause();
    await t.waitFor(() => accepted > 0, 'the first write');
    await t.sleep(1000);
    assert.ok(accepted < BOUND, `the stream took ${accepted} bytes while the peer read nothing for 1 s`);
    stop = true;
    client.resume();
    const data = await within(client.readAll(), 10_000, 'the end of the data');
    const outcome = (await result(0, 10_000)) as Awaited<ReturnType<typeof writeUntilStuck>>;
    assert.equal(outcome.error, null);
    assert.equal(data.length, outcome.written, 'every byte the stream took reached the peer');
    assert.ok(
      data.every((b) => b === 0x61),
      'the bytes arrived intact',
    );
  },
  20_000,
);

defineCase('R16.force-output', 'forceOutput sends what is buffered without closing the stream', async (t) => {
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h);
      await s.writeLine('ping');
      s.forceOutput();
      const reply = await s.readLine();
      await s.close();
      return reply;
    },
  ]);
  const client = await t.connect(port);
  assert.equal(await within(client.readLine(), 5000, 'the forced line'), 'ping');
  assert.equal(client.ended, false, 'the stream is still open');
  await client.writeLine('pong');
  assert.equal(await result(), 'pong');
});

defineCase('R16.finish-output', 'finishOutput resolves once what was written has been sent', async (t) => {
  const finished = settle<void>();
  const hold = gate(t);
  const payload = randomBytes(1 * MiB);
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h);
      await s.writeSequence(payload);
      await s.writeLine('done');
      await s.finishOutput();
      finished.resolve();
      await hold.promise;
      await s.close();
    },
  ]);
  const client = await t.connect(port);
  await within(finished.promise, 5000, 'finishOutput to resolve');
  // The server does nothing more until the client has everything: finishOutput must have sent it.
  const got = await within(client.readBytes(payload.length), 5000, 'the payload');
  assert.ok(got.equals(payload), 'the payload arrived byte-exact');
  assert.equal(await within(client.readLine(), 5000, 'the line after the payload'), 'done');
  assert.equal(client.ended, false, 'the stream is still open');
  hold.open();
  await result();
});

defineCase(
  'R16.line-limit',
  'a line longer than lineLimit makes readLine reject with a RangeError; the server serves the next client',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h, { lineLimit: 1024 });
        await assert.rejects(async () => s.readLine(), RangeError);
        await s.close({ abort: true });
        return 'rejected';
      },
      async (h) => {
        const s = stream(t, h);
        const line = await s.readLine();
        await s.writeLine(`echo ${line}`);
        await s.close();
        return line;
      },
    ]);
    const first = await t.connect(port);
    await first.write(`${'x'.repeat(10_000)}\n`).catch(() => {});
    assert.equal(await result(0), 'rejected');
    const second = await t.connect(port);
    await second.writeLine('short');
    assert.equal(await within(second.readLine(), 5000, 'the echo'), 'echo short');
    assert.equal(await result(1), 'short');
  },
);

defineCase(
  'R16.line-limit-default',
  'a stream has a line limit by default: a line beyond it (no newline at all) is a RangeError, not unbounded memory',
  async (t) => {
    const limit = settle<number>();
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        limit.resolve(s.lineLimit);
        await assert.rejects(async () => s.readLine(), RangeError);
        await s.close({ abort: true });
        return 'rejected';
      },
    ]);
    const client = await t.connect(port);
    const lineLimit = await within(limit.promise, 5000, 'the handler');
    assert.ok(
      Number.isInteger(lineLimit) && lineLimit > 0 && lineLimit <= 64 * MiB,
      `the default line limit is ${lineLimit}`,
    );
    void client.write(Buffer.alloc(lineLimit + 256 * KiB, 0x61)).catch(() => {});
    assert.equal(await result(0, 10_000), 'rejected');
  },
  15_000,
);

defineCase(
  'R16.close-ends',
  'close() sends what is buffered and ends the connection; later writes fail',
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        await s.writeLine('bye');
        await s.close();
        const closed = s.closed;
        await assert.rejects(async () => s.writeLine('after close'), Error);
        return closed;
      },
    ]);
    const client = await t.connect(port);
    assert.equal(await client.readLine(), 'bye');
    assert.equal(await within(client.readLine(), 5000, 'the end of the connection'), null);
    assert.equal(client.ended, true);
    assert.equal(await result(), true, 'closed is true after close()');
  },
);

defineCase('R16.echo-1mib', '1 MiB of bytes is echoed byte-exact', async (t) => {
  const { port, result } = await serve(t, [
    async (h) => {
      const s = stream(t, h);
      let total = 0;
      while (total < MiB) {
        const chunk = await s.readAvailable();
        if (chunk === null) break;
        total += chunk.length;
        await s.writeSequence(chunk);
      }
      await s.close();
      return total;
    },
  ]);
  const client = await t.connect(port);
  const payload = randomBytes(1 * MiB);
  await client.write(payload);
  const echoed = await within(client.readAll(), 8000, 'the echo');
  assert.equal(echoed.length, payload.length);
  assert.ok(echoed.equals(payload), 'the echo is byte-exact');
  assert.equal(await result(), payload.length);
});

defineCase(
  'R16.write-after-peer-eof',
  "after the peer's end of file (its half-close) the stream can still write: read until null, then reply",
  async (t) => {
    const { port, result } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        const lines = await readAllLines(s);
        await s.writeLine(`got ${lines.length - 1} lines`);
        await s.close();
        return lines;
      },
    ]);
    const client = await t.connect(port);
    await client.write('request 1\nrequest 2\n');
    client.end();
    assert.deepEqual(await result(), ['request 1', 'request 2', null]);
    assert.equal(await within(client.readLine(), 5000, 'the reply'), 'got 2 lines');
  },
);

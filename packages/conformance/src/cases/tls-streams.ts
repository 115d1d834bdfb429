/**
 * TLS (contract section 6), R22: data over TLS. Ten MiB each way at once, R16a's bounded output
 * under TLS, and close_notify at the end.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import type { SocketStream } from '@comm/core/backend';
import { kernelTaken, tcpCounters } from '../kernel.js';
import { defineCase, within } from '../suite.js';
import {
  MILLION,
  numberedLine,
  OUTPUT_BUFFER,
  RSS_BACKSTOP,
  STALL_MS,
  transportHeadroom,
  WRITER_LINE,
} from './helpers/flow.js';
import { openTlsOk, peerArgs, pythonPeer, serverContext, tlsServer } from './helpers/tls.js';
import { KiB, MiB, stream } from './helpers.js';

/** Bytes each way in R22.ten-mib-each-way. */
const TEN_MIB = 10 * MiB;
const PIECE = 64 * KiB;

async function sendAll(s: SocketStream, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length; at += PIECE)
    await s.writeSequence(data, at, Math.min(data.length, at + PIECE));
  await s.finishOutput();
}

async function hashUntil(s: SocketStream, limit: number): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  while (bytes < limit) {
    const chunk = await s.readAvailable();
    if (chunk === null) break;
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

defineCase(
  'R22.ten-mib-each-way',
  '10 MiB each way at once over TLS (both ends write while they read) arrive byte for byte',
  async (t) => {
    const toServer = randomBytes(TEN_MIB);
    const toClient = randomBytes(TEN_MIB);
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h, { elementType: 'unsigned-byte', readTimeout: 30 });
      const [, got] = await Promise.all([sendAll(s, toClient), hashUntil(s, TEN_MIB)]);
      await s.close();
      return got;
    });
    const s = await openTlsOk(t, port, { elementType: 'unsigned-byte', readTimeout: 30 });
    const [, got] = await within(
      Promise.all([sendAll(s, toServer), hashUntil(s, Number.POSITIVE_INFINITY)]),
      50_000,
      '10 MiB each way',
    );
    const served = (await result(0, 10_000)) as { bytes: number; sha256: string };
    assert.equal(served.bytes, TEN_MIB, `the server received ${served.bytes} bytes`);
    assert.equal(served.sha256, sha256(toServer), 'the bytes the server received differ from those sent');
    assert.equal(got.bytes, TEN_MIB, `the client received ${got.bytes} bytes`);
    assert.equal(got.sha256, sha256(toClient), 'the bytes the client received differ from those sent');
  },
  60_000,
);

// R16a under TLS: the approach of flow.ts's never-reading-peer cases, with Python as the client.

defineCase(
  'R22.backpressure',
  'R16a over TLS: a writer whose TLS client reads nothing waits; beyond what the kernel took, the stream and the TLS layer hold at most 64 KiB plus one write; every line arrives',
  async (t) => {
    const progress = { lines: 0, bytes: 0, done: false };
    let stop = false;
    t.defer(() => {
      stop = true;
    });
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h, { readTimeout: 20 });
      assert.equal(await s.readLine(), 'go');
      let i = 0;
      for (; i < MILLION && !stop; i++) {
        if (i % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
        await s.writeLine(numberedLine(i, WRITER_LINE));
        s.forceOutput();
        progress.lines = i + 1;
        progress.bytes += WRITER_LINE;
      }
      progress.done = i === MILLION;
      await s.close();
      return i;
    });
    const peer = pythonPeer(t, 'silent-reader', peerArgs(t, port));
    const [, localPort] = await peer.line(/^READY (\d+)$/);
    const socket = { localPort: port, remotePort: Number(localPort) };
    // What the kernel took from the server's socket before the writer started (the handshake).
    await t.sleep(100);
    const baseline = kernelTaken(await tcpCounters(socket));
    const rssBefore = process.memoryUsage().rss;
    peer.tell('go');
    const headroom = transportHeadroom(t);
    const bound = OUTPUT_BUFFER + WRITER_LINE + headroom.bytes;
    const what = `the output buffer of 64 KiB plus one write${headroom.why ? ` ${headroom.why}` : ''}`;
    let last = -1;
    let lastChange = Date.now();
    let lines = 0;
    for (const until = Date.now() + 8000; ; ) {
      await t.sleep(50);
      const resolved = progress.bytes;
      lines = progress.lines;
      // The kernel counts ciphertext: each record adds its header and tag, so `held` is never
      // overstated, and the runtime's TLS layer must keep within the same bound as the stream.
      const taken = kernelTaken(await tcpCounters(socket)) - baseline;
      const held = resolved - taken;
      assert.ok(
        held <= bound,
        `the stream took ${(held / KiB).toFixed(1)} KiB more than the kernel has (${lines} lines): more than ${what} (${(bound / KiB).toFixed(1)} KiB)`,
      );
      assert.ok(
        !progress.done,
        `the writer wrote all ${lines} lines to a client that reads nothing and never waited`,
      );
      if (resolved !== last) {
        last = resolved;
        lastChange = Date.now();
      } else if (Date.now() - lastChange >= STALL_MS && lines > 0) break;
      assert.ok(Date.now() < until, 'the writer was still making progress after 8 s');
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    assert.ok(
      rssGrowth < RSS_BACKSTOP,
      `the process grew by ${(rssGrowth / MiB).toFixed(1)} MiB while its TLS client read nothing`,
    );
    // The client reads now: every line the stream took arrives, in order.
    stop = true;
    peer.tell('read');
    const [, count, digest] = await peer.line(/^DONE (\d+) ([0-9a-f]+) /, 20_000);
    const written = (await result(0, 20_000)) as number;
    const expected = Buffer.from(
      Array.from({ length: written }, (_, i) => `${numberedLine(i, WRITER_LINE)}\n`).join(''),
    );
    assert.equal(Number(count), expected.length, `the client received ${count} bytes of ${written} lines`);
    assert.equal(digest, sha256(expected), 'the lines arrived changed or out of order');
  },
  40_000,
);

defineCase(
  'R22.close-notify',
  "stream.close() ends TLS with close_notify: Python's ssl (suppress_ragged_eofs=False) reads to the end without SSLEOFError",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), async (h) => {
      const s = stream(t, h);
      for (const word of ['one', 'two', 'three']) await s.writeLine(word);
      await s.close();
      return true;
    });
    const peer = pythonPeer(t, 'talk', peerArgs(t, port));
    const answer = await peer.result();
    assert.equal(answer.received, 'one\ntwo\nthree\n');
    assert.equal(answer.eof, 'clean', `the TLS connection ended without close_notify: ${answer.eof}`);
    await result(0);
  },
  20_000,
);

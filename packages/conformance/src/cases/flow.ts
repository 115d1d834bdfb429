/**
 * Flow and speed (contract section 6): R16a bounded output, R16b consolidated flushes. What the
 * stream has handed on, and in how many writes, is read from the kernel (`ss`, tcp_info of the
 * server's accepted socket), never from a flag in JavaScript. R16c is in utf8.ts, R16d in
 * in-step.ts.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import { kernelTaken, type TcpCounters, tcpCounters, tcpCountersSync } from '../kernel.js';
import type { CaseContext } from '../suite.js';
import { defineCase, within } from '../suite.js';
import {
  acceptedSocket,
  assertLines,
  baselineAndGo,
  collectingClient,
  inputHeadroom,
  kib,
  MILLION,
  mib,
  nextTurn,
  numberedLine,
  OUTPUT_BUFFER,
  type Progress,
  RSS_BACKSTOP,
  STALL_MS,
  transportHeadroom,
  WRITER_LINE,
  watchUntilStalled,
} from './helpers/flow.js';
import { gate, KiB, MiB, serve, settle, stream } from './helpers.js';

// ---- R16a: output is bounded ----

type Flush = 'forceOutput' | 'none' | 'finishOutput';

/**
 * A server that writes up to a million lines to a client that reads none, with `flush` after each
 * line, awaiting every call. The writer gives the event loop a turn every 256 lines (as a server
 * between requests does), so that the case can watch it even where its writes never wait.
 */
async function neverReadingPeer(t: CaseContext, flush: Flush): Promise<void> {
  const progress: Progress = { lines: 0, bytes: 0, done: false };
  const line = (i: number) => numberedLine(i, WRITER_LINE);
  let stop = false;
  // However the case ends, the writer stops with it.
  t.defer(() => {
    stop = true;
  });
  const { port, result } = await serve(t, async (h) => {
    const s = stream(t, h);
    assert.equal(await s.readLine(), 'go');
    let i = 0;
    for (; i < MILLION && !stop; i++) {
      if (i % 256 === 0) await nextTurn();
      await s.writeLine(line(i));
      if (flush === 'forceOutput') s.forceOutput();
      else if (flush === 'finishOutput') await s.finishOutput();
      progress.lines = i + 1;
      progress.bytes += WRITER_LINE;
    }
    progress.done = i === MILLION;
    await s.close();
    return i;
  });
  const client = await collectingClient(t, port);
  // Paused before the trigger: the client reads nothing of what the server writes.
  client.transport.pause();
  const socket = acceptedSocket(port, client);
  const baseline = await baselineAndGo(client, socket);
  const headroom = transportHeadroom(t);
  // finishOutput resolves only once everything is in the kernel (R16b): nothing may be held then.
  const bound =
    flush === 'finishOutput'
      ? {
          bytes: headroom.bytes,
          what: `nothing, once finishOutput has resolved${headroom.why ? ` ${headroom.why}` : ''}`,
        }
      : {
          bytes: OUTPUT_BUFFER + WRITER_LINE + headroom.bytes,
          what: `the output buffer of 64 KiB plus one write${headroom.why ? ` ${headroom.why}` : ''}`,
        };
  const stall = await watchUntilStalled(t, socket, progress, baseline, bound);
  assert.ok(stall.lines < MILLION, 'the writer waited');
  // Now the client reads: every line the stream took arrives, intact and in order.
  stop = true;
  client.transport.resume();
  const data = await within(client.all(), 10_000, 'the end of the output');
  const written = (await result(0, 10_000)) as number;
  assertLines(data, written, line);
}

defineCase(
  'R16a.force-output-writer-waits',
  'a writer that forces every line to a peer that reads nothing waits: beyond what the kernel took, the stream holds at most 64 KiB plus one write, and every line arrives',
  (t) => neverReadingPeer(t, 'forceOutput'),
  20_000,
);

defineCase(
  'R16a.unforced-writer-waits',
  'a writer that never forces, to a peer that reads nothing, waits: beyond what the kernel took, the stream holds at most 64 KiB plus one write, and every line arrives',
  (t) => neverReadingPeer(t, 'none'),
  20_000,
);

defineCase(
  'R16a.finish-output-writer-waits',
  'a writer that awaits finishOutput after every line, to a peer that reads nothing, waits: every line it finished is in the kernel, and every line arrives',
  (t) => neverReadingPeer(t, 'finishOutput'),
  20_000,
);

/** The client's requests in the echo case: 32 bytes each. */
const REQUEST = 32;
/** The server's replies: 256 bytes each, 8 times the request, as replies often are. */
const REPLY = 256;
/** The requests the client sends, and reads the replies of, before it stops reading. */
const WARM_UP = 16_384;
/**
 * A few hundred KiB (R16a): what a server may hold of its client's input that its handler has not
 * asked for, while the handler is stuck.
 */
const INPUT_BOUND = 512 * KiB;

defineCase(
  'R16a.never-reading-peer-bounded',
  "a client that sends a million lines and reads none of the replies leaves the server's memory where it was: beyond what the kernel took, the stream holds at most 64 KiB plus one reply, and every reply it took arrives",
  async (t) => {
    const progress: Progress = { lines: 0, bytes: 0, done: false };
    const reply = (i: number) => numberedLine(i, REPLY);
    const request = (i: number) => numberedLine(i, REQUEST);
    const { port } = await serve(t, async (h) => {
      const s = stream(t, h);
      let n = 0;
      for (let got = await s.readLine(); got !== null; got = await s.readLine()) {
        await s.writeLine(reply(Number(got.slice(0, 8))));
        s.forceOutput();
        n++;
        progress.lines = n;
        progress.bytes += REPLY;
      }
      await s.close();
      return n;
    });
    const client = await collectingClient(t, port);
    const socket = acceptedSocket(port, client);
    const baseline = kernelTaken(await tcpCounters(socket));
    // The client sends its lines 2048 at a time (64 KiB), each batch once the last is taken.
    let sent = 0;
    let stopSending = false;
    t.defer(() => {
      stopSending = true;
    });
    const send = async (until: number) => {
      while (sent < until && !stopSending) {
        const count = Math.min(2048, until - sent);
        const batch: string[] = [];
        for (let i = 0; i < count; i++) batch.push(`${request(sent + i)}\n`);
        await client.transport.write(Buffer.from(batch.join('')));
        sent += count;
      }
    };
    // First the client reads every reply, so that the server's memory is measured once it has
    // settled (a runtime's heap grows with the first work it does, whoever reads).
    await within(send(WARM_UP), 10_000, 'the warm-up requests');
    await within(client.received(WARM_UP * REPLY), 10_000, 'the replies to the warm-up requests');
    client.transport.pause();
    client.drop();
    const rssBefore = process.memoryUsage().rss;
    const sending = send(MILLION).then(() => client.transport.end());
    sending.catch(() => {});
    const headroom = transportHeadroom(t);
    const stall = await watchUntilStalled(t, socket, progress, baseline, {
      bytes: OUTPUT_BUFFER + REPLY + headroom.bytes,
      what: `the output buffer of 64 KiB plus one write${headroom.why ? ` ${headroom.why}` : ''}`,
    });
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    // The kernel's count above is the precise bound. A garbage-collected heap keeps the space its
    // garbage took for a while (V8 grew its heap by 10-20 MiB of free space here, with what is
    // live after a collection up by 0.3 MiB), so the process's size is only a backstop, for what
    // the kernel cannot see: memory kept for every line (a stream that queues each forced write
    // keeps some 900 bytes per unread reply).
    assert.ok(
      rssGrowth < RSS_BACKSTOP,
      `the process grew by ${mib(rssGrowth)} while its client read nothing (${stall.lines} replies, ${kib(stall.held)} held)`,
    );
    // The client reads now: every reply the stream took arrives, in order. (The requests still in
    // the kernel's buffers, megabytes of them, are not waited for: the writers above check that
    // everything arrives.)
    stopSending = true;
    client.transport.resume();
    await within(client.received(stall.lines * REPLY), 10_000, 'the replies the stream took');
    assertLines(client.bytes(), stall.lines, reply, WARM_UP, false);
  },
  30_000,
);

defineCase(
  'R16a.stopped-reader-input-bounded',
  'a server that stops reading holds at most a few hundred KiB of what its client goes on sending: the client is slowed down by the kernel, the rest is not buffered',
  async (t) => {
    const request = (i: number) => numberedLine(i, REQUEST);
    const hold = gate(t);
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      // One line, then nothing until the case is done measuring; then every line, in order.
      let n = 0;
      for (let got = await s.readLine(); got !== null; got = await s.readLine()) {
        if (got !== request(n)) return `line ${n} arrived as ${JSON.stringify(got.slice(0, 40))}`;
        n++;
        if (n === 1) await hold.promise;
      }
      await s.close();
      return n;
    });
    const client = await collectingClient(t, port);
    const socket = acceptedSocket(port, client);
    const initially = await tcpCounters(socket);
    let sent = 0;
    let stopSending = false;
    t.defer(() => {
      stopSending = true;
    });
    const sending = (async () => {
      while (sent < MILLION && !stopSending) {
        const count = Math.min(2048, MILLION - sent);
        const batch: string[] = [];
        for (let i = 0; i < count; i++) batch.push(`${request(sent + i)}\n`);
        await client.transport.write(Buffer.from(batch.join('')));
        sent += count;
      }
      client.transport.end();
    })();
    sending.catch(() => {});
    // What the server's process has read from the kernel (bytes received less its Recv-Q),
    // beyond the one line its handler asked for, until the kernel stops taking more.
    const headroom = inputHeadroom(t);
    const bound = INPUT_BOUND + headroom.bytes;
    const readAhead = (now: TcpCounters) =>
      now.bytesReceived - now.recvQ - (initially.bytesReceived - initially.recvQ) - REQUEST;
    let last = -1;
    let lastChange = Date.now();
    let held = 0;
    for (const until = Date.now() + 8000; ; ) {
      await t.sleep(50);
      const now = await tcpCounters(socket);
      held = readAhead(now);
      assert.ok(
        held <= bound,
        `the server read ${kib(held)} of its client's input that its handler did not ask for ` +
          `(${mib(now.bytesReceived)} received, ${kib(now.recvQ)} left in the kernel): more than a few hundred KiB ` +
          `(${kib(bound)}${headroom.why ? `, ${headroom.why}` : ''})`,
      );
      if (now.bytesReceived !== last) {
        last = now.bytesReceived;
        lastChange = Date.now();
      } else if (Date.now() - lastChange >= STALL_MS) break;
      assert.ok(Date.now() < until, 'the server was still receiving after 8 s');
    }
    // The handler reads again: every line the client sent arrives, in order.
    stopSending = true;
    hold.open();
    await within(sending, 10_000, 'the last batch of requests');
    assert.equal(await result(0, 15_000), sent, 'the server read every line the client sent');
  },
  30_000,
);

// ---- R16b: forceOutput consolidates, finishOutput and close wait for the kernel ----

/** The data segments the server's socket sent between `before` and `after`, and what they carried. */
function segmentsBetween(before: TcpCounters, after: TcpCounters): string {
  const segments = after.dataSegsOut - before.dataSegsOut;
  const bytes = kernelTaken(after) - kernelTaken(before);
  const retrans = after.bytesRetrans - before.bytesRetrans;
  return `${segments} data segments (${bytes} bytes${retrans > 0 ? `, ${retrans} retransmitted` : ''})`;
}

defineCase(
  'R16b.one-write-per-turn',
  '16 lines written and forced in one turn reach the kernel in one write: one data segment on the wire',
  async (t) => {
    const hold = gate(t);
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      assert.equal(await s.readLine(), 'go');
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 16; i++) {
        writes.push(s.writeLine(`line ${i}`));
        s.forceOutput();
      }
      await Promise.all(writes);
      // Nothing more is written until the case has counted.
      await hold.promise;
      await s.close();
    });
    const client = await t.connect(port);
    const socket = acceptedSocket(port, client);
    const before = await tcpCounters(socket);
    await client.writeLine('go');
    for (let i = 0; i < 16; i++)
      assert.equal(await within(client.readLine(), 5000, `line ${i}`), `line ${i}`);
    const after = await tcpCounters(socket);
    assert.equal(
      after.dataSegsOut - before.dataSegsOut,
      1,
      `the 16 forced lines left the server's socket in ${segmentsBetween(before, after)}, not in one write`,
    );
    hold.open();
    await result();
  },
);

defineCase(
  'R16b.pipelined-replies-one-write',
  "the talk server's replies to 16 lines that arrived together (await writeLine, then forceOutput, each) reach the kernel in one write",
  async (t) => {
    const hold = gate(t);
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      for (let i = 0; i < 16; i++) {
        const line = await s.readLine();
        await s.writeLine(`You sent: '${line}'`);
        s.forceOutput();
      }
      await hold.promise;
      await s.close();
    });
    const client = await t.connect(port);
    const socket = acceptedSocket(port, client);
    const before = await tcpCounters(socket);
    // One write, one segment: the server reads the 16 lines at once.
    await client.write(Array.from({ length: 16 }, (_, i) => `request ${i}\n`).join(''));
    for (let i = 0; i < 16; i++)
      assert.equal(await within(client.readLine(), 5000, `reply ${i}`), `You sent: 'request ${i}'`);
    const after = await tcpCounters(socket);
    assert.equal(
      after.dataSegsOut - before.dataSegsOut,
      1,
      `the 16 replies left the server's socket in ${segmentsBetween(before, after)}, not in one write`,
    );
    hold.open();
    await result();
  },
);

defineCase(
  'R16b.force-output-sends-by-end-of-turn',
  'forceOutput starts sending by the end of the turn: a callback queued for the end of the turn after the forced writes (setImmediate) finds them in the kernel',
  async (t) => {
    const hold = gate(t);
    const socketOf = settle<{ localPort: number; remotePort: number }>();
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      assert.equal(await s.readLine(), 'go');
      const socket = await socketOf.promise;
      const before = kernelTaken(tcpCountersSync(socket));
      let bytes = 0;
      for (let i = 0; i < 16; i++) {
        void s.writeLine(`line ${i}`);
        bytes += `line ${i}\n`.length;
        s.forceOutput();
      }
      // Queued after the forced writes, so after whatever the stream queued for the end of this
      // turn (setImmediate runs its callbacks in order; a timer would not do: Bun runs a timer
      // that is due before the turn's immediates).
      const taken = await new Promise<number>((resolve) =>
        setImmediate(() => resolve(kernelTaken(tcpCountersSync(socket)) - before)),
      );
      await hold.promise;
      await s.close();
      return { taken, bytes };
    });
    const client = await t.connect(port);
    socketOf.resolve(acceptedSocket(port, client));
    await client.writeLine('go');
    for (let i = 0; i < 16; i++)
      assert.equal(await within(client.readLine(), 5000, `line ${i}`), `line ${i}`);
    hold.open();
    const { taken, bytes } = (await result()) as { taken: number; bytes: number };
    assert.ok(
      taken >= bytes,
      `by the end of the turn of forceOutput the kernel had taken ${taken} of the ${bytes} bytes forced`,
    );
  },
);

defineCase(
  'R16b.finish-output-waits-for-kernel',
  'finishOutput resolves only once every byte is in the kernel: it waits while the peer reads nothing, and the client then gets everything without the server doing more',
  async (t) => {
    const payload = randomBytes(16 * MiB);
    const hold = gate(t);
    const socketOf = settle<{ localPort: number; remotePort: number }>();
    const finished = settle<number>();
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      assert.equal(await s.readLine(), 'go');
      const socket = await socketOf.promise;
      const before = kernelTaken(tcpCountersSync(socket));
      const write = s.writeSequence(payload);
      write.catch(() => {});
      await s.finishOutput();
      // Read at once, before the event loop turns: what the kernel had when finishOutput resolved.
      finished.resolve(kernelTaken(tcpCountersSync(socket)) - before);
      await write;
      await hold.promise;
      await s.close();
    });
    const client = await collectingClient(t, port);
    client.transport.pause();
    socketOf.resolve(acceptedSocket(port, client));
    await client.transport.write(Buffer.from('go\n'));
    // 16 MiB is more than loopback's buffers hold: finishOutput cannot resolve before the client reads.
    await t.sleep(STALL_MS);
    const early = finished.settled();
    client.transport.resume();
    // The server does nothing more: what finishOutput sent is all the client can get.
    await within(client.received(payload.length), 10_000, 'the payload').catch(async (error: Error) => {
      const state = finished.settled() ? 'finishOutput had resolved' : 'finishOutput had not resolved';
      const server = await tcpCounters(acceptedSocket(port, client));
      const peer = await tcpCounters({ localPort: client.localPort, remotePort: port });
      throw new Error(
        `${error.message}: ${client.count} of ${payload.length} bytes arrived; ${state}; the server's ` +
          `socket took ${kernelTaken(server)} bytes in all, ${server.sendQ} unacknowledged; the client's ` +
          `received ${peer.bytesReceived}, ${peer.recvQ} unread`,
      );
    });
    assert.ok(client.bytes().equals(payload), 'the payload arrived byte-exact');
    const taken = await within(finished.promise, 5000, 'finishOutput to resolve once the client read');
    const headroom = transportHeadroom(t);
    assert.ok(
      taken >= payload.length - headroom.bytes,
      `when finishOutput resolved${early ? ', while the peer read nothing,' : ''} the kernel had taken ` +
        `${taken} of ${payload.length} bytes${headroom.why ? ` (${headroom.why})` : ''}`,
    );
    hold.open();
    await result();
  },
  20_000,
);

defineCase(
  'R16b.close-delivers-forced-writes',
  'close() after 16 lines written and forced in one turn delivers all 16, then end of file',
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      assert.equal(await s.readLine(), 'go');
      for (let i = 0; i < 16; i++) {
        void s.writeLine(`line ${i}`);
        s.forceOutput();
      }
      await s.close();
      return s.closed;
    });
    const client = await t.connect(port);
    await client.writeLine('go');
    for (let i = 0; i < 16; i++)
      assert.equal(await within(client.readLine(), 5000, `line ${i}`), `line ${i}`);
    assert.equal(await within(client.readLine(), 5000, 'the end of file'), null);
    assert.equal(await result(), true, 'close() resolved');
  },
);

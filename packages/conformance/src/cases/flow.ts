/**
 * Flow and speed (contract section 6): R16a bounded output, R16b consolidated flushes, R16c UTF-8
 * input. What the stream has handed on, and in how many writes, is read from the kernel (`ss`,
 * tcp_info of the server's accepted socket), never from a flag in JavaScript.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import { kernelTaken, type TcpCounters, tcpCounters, tcpCountersSync } from '../kernel.js';
import type { CaseContext, RawTransport } from '../suite.js';
import { defineCase, tcpTransport, within } from '../suite.js';
import { charReader, gate, serve, settle, stream } from './helpers.js';

// ---- helpers ----

const KiB = 1024;
const MiB = 1024 * KiB;

/** The contract's output buffer (R16a): what a stream may hold, plus one write, before a write waits. */
const OUTPUT_BUFFER = 64 * KiB;

/** How long a writer makes no progress before the cases call it stalled. */
const STALL_MS = 500;

/** A million lines: what the writers try to write to a peer that reads none. */
const MILLION = 1_000_000;

/** The server's accepted socket for `client`, as `ss` names it: the server's port, the client's port. */
function acceptedSocket(
  port: number,
  client: { readonly localPort: number },
): { localPort: number; remotePort: number } {
  return { localPort: port, remotePort: client.localPort };
}

/**
 * An independent client (the subject's transport, or `node:net`) that keeps what it receives as a
 * list of chunks. The cases that receive megabytes in tens of thousands of one-line WebSocket
 * messages use it: `RawClient` joins every chunk into one buffer, which is quadratic there.
 */
class Collector {
  readonly transport: RawTransport;
  readonly #chunks: Uint8Array[] = [];
  #received = 0;
  #ended = false;
  #wake: Array<() => void> = [];

  constructor(transport: RawTransport) {
    this.transport = transport;
    transport.onData((chunk) => {
      this.#chunks.push(chunk);
      this.#received += chunk.length;
      this.#notify();
    });
    transport.onEnd(() => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  get localPort(): number {
    return this.transport.localPort;
  }

  /** Bytes received in all. */
  get count(): number {
    return this.#received;
  }

  /** Resolves once `bytes` have been received in all (or the peer has closed). */
  async received(bytes: number): Promise<void> {
    while (this.#received < bytes && !this.#ended)
      await new Promise<void>((resolve) => this.#wake.push(resolve));
  }

  /** Forgets what was received so far (its count stays). */
  drop(): void {
    this.#chunks.length = 0;
  }

  /** What has been received so far (since `drop`). */
  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Everything received (since `drop`), once the peer has closed. */
  async all(): Promise<Buffer> {
    while (!this.#ended) await new Promise<void>((resolve) => this.#wake.push(resolve));
    return Buffer.concat(this.#chunks);
  }
}

async function collectingClient(t: CaseContext, port: number): Promise<Collector> {
  const exported = t.api.conformanceTransport;
  const custom =
    t.subject.transport ??
    (typeof exported === 'function'
      ? (exported as (port: number, host: string) => Promise<RawTransport>)
      : null);
  let transport: RawTransport;
  if (custom) transport = await custom(port, '127.0.0.1');
  else {
    const socket = net.connect({ port, host: '127.0.0.1' });
    t.defer(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    transport = tcpTransport(socket);
  }
  t.defer(() => transport.destroy());
  return new Collector(transport);
}

/**
 * What a backend's transport may hold in user space beyond the stream's own buffer, on the way to
 * the kernel, and why. TCP backends hand bytes straight to the kernel: nothing. uWS keeps a
 * WebSocket's bytes in its own buffer: `@comm/uws` lets a write go on while uWS holds up to its
 * `highWater` (256 KiB by default), and the write that passes it adds one message of `sendChunk`
 * (64 KiB by default) with its frame header (packages/uws/src/server.ts, `UwsConnection.write`).
 */
function transportHeadroom(t: CaseContext): { bytes: number; why: string } {
  if (t.api.backend.name === 'uws')
    return {
      bytes: 256 * KiB + 64 * KiB + 16,
      why: "plus uWS's own buffer (highWater 256 KiB, one 64 KiB message past it)",
    };
  return { bytes: 0, why: '' };
}

/**
 * What a backend's transport may have read of a client's input beyond what a stopped reader asked
 * for, and why. uWS cannot stop reading a WebSocket: comm-stream's window bounds what a client
 * sends beyond the server's last acknowledgement (1 MiB, packages/uws/src/protocol.ts), plus one
 * client message (64 KiB) and the frame headers.
 */
function inputHeadroom(t: CaseContext): { bytes: number; why: string } {
  if (t.api.backend.name === 'uws')
    return { bytes: MiB + 64 * KiB + 4 * KiB, why: "plus comm-stream's window of 1 MiB (uWS reads all)" };
  return { bytes: 0, why: '' };
}

/** Gives the event loop one turn (a check-phase callback). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Line `i` of a writer's output: `size` bytes with its newline, its number first, so order can be checked. */
function numberedLine(i: number, size: number): string {
  const number = String(i).padStart(8, '0');
  return `${number} ${'x'.repeat(size - number.length - 2)}`;
}

/**
 * Checks that `data` is exactly lines from..count-1 of `line`, each with its newline (or begins
 * with them, unless `exact`); names the first that is not.
 */
function assertLines(data: Buffer, count: number, line: (i: number) => string, from = 0, exact = true): void {
  let at = 0;
  for (let i = from; i < count; i++) {
    const expected = `${line(i)}\n`;
    const got = data.toString('utf8', at, at + expected.length);
    if (got !== expected) {
      assert.fail(
        `line ${i} of ${count} arrived as ${JSON.stringify(got.slice(0, 40))}, not ${JSON.stringify(expected.slice(0, 40))}`,
      );
    }
    at += expected.length;
  }
  if (exact)
    assert.equal(
      at,
      data.length,
      `${data.length - at} bytes arrived after the ${count} lines the stream took`,
    );
}

function kib(bytes: number): string {
  return `${(bytes / KiB).toFixed(1)} KiB`;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** How far a writer has got: the lines and bytes whose awaited calls have resolved. */
interface Progress {
  lines: number;
  bytes: number;
  done: boolean;
}

interface Stall {
  /** Bytes whose calls resolved, beyond what the kernel has taken, when the writer stalled. */
  held: number;
  resolved: number;
  taken: number;
  lines: number;
}

/**
 * Watches a writer whose peer reads nothing until it makes no progress for `STALL_MS`. Every 50 ms
 * it compares what the writer's resolved calls gave the stream with what the kernel has taken
 * from the server's socket (`bytes_acked + Send-Q`, less `baseline`, the bytes taken before the
 * writer started), and fails as soon as the difference, what the stream and the runtime hold in
 * user space, passes `bound`. The writer's count is read before `ss` runs and the kernel's count
 * only grows meanwhile, so the difference is never overstated.
 */
async function watchUntilStalled(
  t: CaseContext,
  socket: { localPort: number; remotePort: number },
  progress: Progress,
  baseline: number,
  bound: { bytes: number; what: string },
  watchMs = 8000,
): Promise<Stall> {
  let last = -1;
  let lastChange = Date.now();
  const until = Date.now() + watchMs;
  for (;;) {
    await t.sleep(50);
    const resolved = progress.bytes;
    const lines = progress.lines;
    const taken = kernelTaken(await tcpCounters(socket)) - baseline;
    const held = resolved - taken;
    if (held > bound.bytes) {
      assert.fail(
        `the stream took ${kib(held)} more than the kernel has (${lines} lines, ${mib(resolved)} resolved, ` +
          `${mib(taken)} in the kernel): more than ${bound.what} (${kib(bound.bytes)})`,
      );
    }
    if (progress.done) {
      assert.fail(
        `the writer wrote all ${lines} lines (${mib(resolved)}) to a peer that reads nothing and never waited`,
      );
    }
    if (resolved !== last) {
      last = resolved;
      lastChange = Date.now();
    } else if (Date.now() - lastChange >= STALL_MS) {
      return { held, resolved, taken, lines };
    }
    if (Date.now() > until) assert.fail(`the writer was still making progress after ${watchMs} ms`);
  }
}

/** The client's trigger, and the server's baseline: bytes the kernel took from the server's socket before it. */
async function start(client: Collector, socket: { localPort: number; remotePort: number }): Promise<number> {
  const baseline = kernelTaken(await tcpCounters(socket));
  await client.transport.write(Buffer.from('go\n'));
  return baseline;
}

// ---- R16a: output is bounded ----

type Flush = 'forceOutput' | 'none' | 'finishOutput';

/** Bytes per line of the writers: a reply of a line-based protocol. */
const WRITER_LINE = 100;

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
  const baseline = await start(client, socket);
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
/** How much a process may grow, garbage included, while a client reads none of its replies. */
const RSS_BACKSTOP = 64 * MiB;
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

// ---- R16c: input text is UTF-8 ----

/** A server that reads `count` lines (or until end of file) and returns them. */
function lineReader(t: CaseContext, count: number) {
  return serve(t, async (h) => {
    const s = stream(t, h);
    const lines: Array<string | null> = [];
    for (let i = 0; i < count; i++) {
      const line = await s.readLine();
      lines.push(line);
      if (line === null) break;
    }
    return lines;
  });
}

const BOM = '\uFEFF';
const REPLACEMENT = '\uFFFD';

/** Text as JSON with every non-ASCII character escaped, so that a BOM or a U+FFFD shows in a message. */
function show(value: unknown): string {
  return JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`,
  );
}

/** The lines (or characters) a reader gave, against those expected, both shown escaped on failure. */
function assertRead(got: unknown, expected: unknown[], what: string): void {
  assert.deepEqual(got, expected, `${what} gave ${show(got)}, not ${show(expected)}`);
}

defineCase(
  'R16c.bom-kept',
  'a byte-order mark is a character: readLine keeps U+FEFF at the start of the stream and of a later line',
  async (t) => {
    const { port, result } = await lineReader(t, 4);
    const client = await t.connect(port);
    await client.write(`${BOM}hello\nsecond\n${BOM}third\n`);
    client.end();
    assertRead(await result(), [`${BOM}hello`, 'second', `${BOM}third`, null], 'readLine');
  },
);

defineCase('R16c.bom-mid-line-kept', 'a byte-order mark inside a line is kept', async (t) => {
  const { port, result } = await lineReader(t, 2);
  const client = await t.connect(port);
  await client.write(`a${BOM}b\n`);
  client.end();
  assertRead(await result(), [`a${BOM}b`, null], 'readLine');
});

defineCase('R16c.read-char-bom', 'readChar reads a byte-order mark as the character U+FEFF', async (t) => {
  const { port, result } = await charReader(t);
  const client = await t.connect(port);
  await client.write(`${BOM}a${BOM}`);
  client.end();
  assertRead(await result(), [BOM, 'a', BOM, null], 'readChar');
});

defineCase(
  'R16c.split-character-read-whole',
  'a character (or a byte-order mark) split across packets is read whole by readLine',
  async (t) => {
    const { port, result } = await lineReader(t, 3);
    const client = await t.connect(port);
    client.setNoDelay(true);
    // 'x😀\n' is 78 f0 9f 98 80 0a, a BOM is ef bb bf: every piece but the last ends inside a character.
    const pieces = [[0x78, 0xf0, 0x9f], [0x98, 0x80, 0x0a, 0xef], [0xbb], [0xbf, 0x79, 0x0a]];
    for (const piece of pieces) {
      await client.write(Uint8Array.from(piece));
      await t.sleep(30);
    }
    client.end();
    assertRead(await result(), ['x😀', `${BOM}y`, null], 'readLine');
  },
);

defineCase(
  'R16c.malformed-bytes-replaced',
  'malformed UTF-8 becomes U+FFFD: a byte 0xFF, a lone continuation byte, a sequence cut short by the newline',
  async (t) => {
    const { port, result } = await lineReader(t, 5);
    const client = await t.connect(port);
    await client.write(
      Uint8Array.from([0x61, 0xff, 0x62, 0x0a, 0x80, 0x0a, 0x63, 0xe2, 0x82, 0x0a, 0x64, 0xf0, 0x9f, 0x98]),
    );
    client.end();
    assertRead(
      await result(),
      [`a${REPLACEMENT}b`, REPLACEMENT, `c${REPLACEMENT}`, `d${REPLACEMENT}`, null],
      'readLine',
    );
  },
);

defineCase(
  'R16c.read-char-malformed',
  'readChar gives one U+FFFD for each malformed sequence, and the characters after it one by one',
  async (t) => {
    const { port, result } = await charReader(t);
    const client = await t.connect(port);
    // e2 82 is a 3-byte sequence cut short by 'a'; ff is never UTF-8; 80 is a lone continuation byte.
    await client.write(Uint8Array.from([0xe2, 0x82, 0x61, 0xff, 0x62, 0x80, 0x63]));
    client.end();
    assertRead(await result(), [REPLACEMENT, 'a', REPLACEMENT, 'b', REPLACEMENT, 'c', null], 'readChar');
  },
);

/**
 * The helpers of the flow cases (R16a, R16b) and of R16a over TLS (R22.backpressure). What a stream
 * has handed on, and in how many writes, is read from the kernel (`ss`, tcp_info of the server's
 * accepted socket), never from a flag in JavaScript.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import { setImmediate } from 'node:timers';
import { kernelTaken, tcpCounters } from '../../kernel.js';
import type { CaseContext, RawTransport } from '../../suite.js';
import { clientTransport, tcpTransport } from '../../suite.js';
import { KiB, MiB } from '../helpers.js';

/** The contract's output buffer (R16a): what a stream may hold, plus one write, before a write waits. */
export const OUTPUT_BUFFER = 64 * KiB;

/** How long a writer makes no progress before the cases call it stalled. */
export const STALL_MS = 500;

/** A million lines: what the writers try to write to a peer that reads none. */
export const MILLION = 1_000_000;

/** Bytes per line of the writers (R16a, and R22.backpressure): a reply of a line-based protocol. */
export const WRITER_LINE = 100;

/** How much a process may grow, garbage included, while a client reads none of what it is sent. */
export const RSS_BACKSTOP = 64 * MiB;

/** The server's accepted socket for `client`, as `ss` names it: the server's port, the client's port. */
export function acceptedSocket(
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
export class Collector {
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

/** A `Collector` on 127.0.0.1:`port` (the subject's transport, or `node:net`), closed after the case. */
export async function collectingClient(t: CaseContext, port: number): Promise<Collector> {
  const custom = clientTransport(t.subject);
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
export function transportHeadroom(t: CaseContext): { bytes: number; why: string } {
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
export function inputHeadroom(t: CaseContext): { bytes: number; why: string } {
  if (t.api.backend.name === 'uws')
    return { bytes: MiB + 64 * KiB + 4 * KiB, why: "plus comm-stream's window of 1 MiB (uWS reads all)" };
  return { bytes: 0, why: '' };
}

/** Gives the event loop one turn (a check-phase callback). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Line `i` of a writer's output: `size` bytes with its newline, its number first, so order can be checked. */
export function numberedLine(i: number, size: number): string {
  const number = String(i).padStart(8, '0');
  return `${number} ${'x'.repeat(size - number.length - 2)}`;
}

/**
 * Checks that `data` is exactly lines from..count-1 of `line`, each with its newline (or begins
 * with them, unless `exact`); names the first that is not.
 */
export function assertLines(
  data: Buffer,
  count: number,
  line: (i: number) => string,
  from = 0,
  exact = true,
): void {
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

/** `bytes` in KiB, for messages. */
export function kib(bytes: number): string {
  return `${(bytes / KiB).toFixed(1)} KiB`;
}

/** `bytes` in MiB, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** How far a writer has got: the lines and bytes whose awaited calls have resolved. */
export interface Progress {
  lines: number;
  bytes: number;
  done: boolean;
}

/** Where a writer whose peer reads nothing stalled (`watchUntilStalled`). */
export interface Stall {
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
export async function watchUntilStalled(
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

/**
 * The client's trigger, and the server's baseline: gives the bytes the kernel took from the
 * server's socket before the client sends `go`.
 */
export async function baselineAndGo(
  client: Collector,
  socket: { localPort: number; remotePort: number },
): Promise<number> {
  const baseline = kernelTaken(await tcpCounters(socket));
  await client.transport.write(Buffer.from('go\n'));
  return baseline;
}

/**
 * What the seam cases share: the backend's listener and connections, cleaned up after the case,
 * and an independent peer on the other end (a `node:net` socket; for a backend whose bytes travel
 * in another transport, such as uWS's WebSocket messages, the subject's transport).
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import type { Connection, Listener, ListenSpec } from '@comm/core/backend';
import type { CaseContext, RawTransport, Subject } from '../suite.js';
import { tcpTransport, within } from '../suite.js';
import { LISTEN } from './listen.js';

export { MiB } from '../cases/helpers.js';
export { LISTEN };

/** `backend.listen` on `LISTEN` (with `over`); the listener is closed after the case. */
export async function listen(t: CaseContext, over: Partial<ListenSpec> = {}): Promise<Listener> {
  const listener = await t.api.backend.listen({ ...LISTEN, ...over });
  t.defer(() => listener.close());
  return listener;
}

/** The next connection (within 5 s), destroyed after the case. */
export async function accepted(t: CaseContext, listener: Listener, what = 'accept()'): Promise<Connection> {
  const connection = await within(listener.accept(), 5000, what);
  if (connection === null) throw new Error(`${what} gave null on an open listener`);
  t.defer(() => connection.destroy());
  return connection;
}

/** A seam write as a promise: `undefined` means the runtime took every byte at once. */
export function written(write: Promise<void> | undefined): Promise<void> {
  return write ?? Promise.resolve();
}

export type Settled<T> =
  | { readonly status: 'resolved'; readonly value: T }
  | { readonly status: 'rejected'; readonly error: unknown };

/** How `promise` settled, never rejecting. */
export function settled<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ status: 'resolved', value }),
    (error: unknown) => ({ status: 'rejected', error }),
  );
}

/** Watches `promise`: `done()` tells whether it has settled yet. */
export function watch<T>(promise: Promise<T>): { readonly outcome: Promise<Settled<T>>; done(): boolean } {
  let done = false;
  const outcome = settled(promise).then((s) => {
    done = true;
    return s;
  });
  return { outcome, done: () => done };
}

/** True if `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([settled(promise).then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that `promise` rejects with an Error whose `code` is one of `codes`; returns the error. */
export async function rejectsWith(
  promise: Promise<unknown>,
  codes: readonly string[],
  what: string,
): Promise<Error> {
  const outcome = await settled(promise);
  if (outcome.status === 'resolved')
    throw new Error(`${what} resolved; it must reject with ${codes.join(' or ')}`);
  const error = outcome.error as { code?: unknown } | null;
  if (!(error instanceof Error))
    throw new Error(`${what} rejected with ${String(error)}, not an Error with code ${codes.join(' or ')}`);
  if (!codes.includes(String(error.code)))
    throw new Error(
      `${what} rejected with code ${String(error.code)} (${error.message}); expected ${codes.join(' or ')}`,
    );
  return error as Error;
}

/** `size` bytes whose every position is checkable, so that a lost, doubled or reordered byte shows. */
export function pattern(size: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >>> 13) + seed) & 0xff;
  return bytes;
}

/** Fails unless `got` is exactly `expected`, naming the first byte that differs. */
export function assertSameBytes(got: Uint8Array, expected: Uint8Array, what: string): void {
  const n = Math.min(got.length, expected.length);
  let at = -1;
  for (let i = 0; i < n; i++)
    if (got[i] !== expected[i]) {
      at = i;
      break;
    }
  if (at >= 0) throw new Error(`${what}: byte ${at} of ${expected.length} differs`);
  if (got.length !== expected.length)
    throw new Error(`${what}: ${got.length} bytes arrived, ${expected.length} were sent`);
}

/** Everything `connection` reads until end of input; with `slowly`, a pause every 32 chunks. */
export async function readToEnd(connection: Connection, slowly = false): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
    chunks.push(chunk);
    if (slowly && chunks.length % 32 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Reads `connection` until a newline; the line without it (what came before the end, at end of input). */
export async function readLine(connection: Connection): Promise<string> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const chunk = await connection.read();
    if (chunk === null) break;
    chunks.push(chunk);
    if (chunk.includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const at = text.indexOf('\n');
  return at < 0 ? text : text.slice(0, at);
}

export const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text));

/**
 * The other end of a connection, with no code of the backend under test in between: reads what
 * arrives into its own buffer (all of it, in order), and can stop reading, read slowly, half-close
 * and reset.
 */
export class Peer {
  readonly #transport: RawTransport;
  readonly #reset: () => void;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #received = 0;
  #waiters: Array<() => void> = [];
  /** Paused by the case (`pause()`), or by `slowly` for a moment. */
  #held = false;
  #resting = false;
  #slowly: { every: number; ms: number; next: number } | null = null;

  constructor(transport: RawTransport, reset: () => void) {
    this.#transport = transport;
    this.#reset = reset;
    transport.onData((chunk) => {
      this.#chunks.push(chunk);
      this.#received += chunk.length;
      const slow = this.#slowly;
      if (slow && this.#received >= slow.next) {
        slow.next = this.#received + slow.every;
        this.#resting = true;
        transport.pause();
        setTimeout(() => {
          this.#resting = false;
          if (!this.#held) transport.resume();
        }, slow.ms);
      }
      this.#wake();
    });
    transport.onEnd(() => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #more(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get localPort(): number {
    return this.#transport.localPort;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#received;
  }

  /** Input has ended: the other side's FIN (or its close, or a reset). */
  get ended(): boolean {
    return this.#ended;
  }

  write(data: string | Uint8Array): Promise<void> {
    return this.#transport.write(typeof data === 'string' ? bytes(data) : data);
  }

  /** Half-close: FIN after what was written; reading goes on. */
  end(): void {
    this.#transport.end();
  }

  /** Stops reading from the network, so that the other side meets backpressure, until `resume()`. */
  pause(): void {
    this.#held = true;
    this.#transport.pause();
  }

  resume(): void {
    this.#held = false;
    if (!this.#resting) this.#transport.resume();
  }

  /** From now on, stops reading for `ms` after every `every` bytes: a slow reader. */
  slowly(every: number, ms: number): void {
    this.#slowly = { every, ms, next: this.#received + every };
  }

  /** Closes at once: over TCP with a reset (RST) where this runtime's node:net can. */
  reset(): void {
    this.#reset();
  }

  destroy(): void {
    this.#transport.destroy();
  }

  #take(): Uint8Array {
    const all = new Uint8Array(Buffer.concat(this.#chunks));
    this.#chunks = [];
    return all;
  }

  /** The next line without its newline; null at end of input with nothing left. */
  async readLine(): Promise<string | null> {
    for (;;) {
      const all = this.#take();
      const at = all.indexOf(0x0a);
      if (at >= 0) {
        this.#chunks = at + 1 < all.length ? [all.subarray(at + 1)] : [];
        return Buffer.from(all.subarray(0, at)).toString('utf8');
      }
      if (all.length > 0) this.#chunks = [all];
      if (this.#ended) {
        this.#chunks = [];
        return all.length > 0 ? Buffer.from(all).toString('utf8') : null;
      }
      await this.#more();
    }
  }

  /** Everything until the end of input. */
  async readAll(): Promise<Uint8Array> {
    while (!this.#ended) await this.#more();
    return this.#take();
  }

  /** Resolves once input has ended. */
  async closed(): Promise<void> {
    while (!this.#ended) await this.#more();
  }
}

/** The subject's own transport for its servers (uWS: WebSocket), or null for TCP. */
function transportOf(subject: Subject): ((port: number, host: string) => Promise<RawTransport>) | null {
  if (subject.transport) return subject.transport;
  const exported = subject.api.conformanceTransport;
  return typeof exported === 'function'
    ? (exported as (port: number, host: string) => Promise<RawTransport>)
    : null;
}

/** A peer over TCP: a half-open `node:net` socket. */
function tcpPeer(port: number, host: string): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      const reset = () => {
        // SO_LINGER 0 then close where this node:net can; elsewhere a close, which is a reset too
        // while unread bytes wait in the socket (the cases that reset leave some).
        if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
        else socket.destroy();
      };
      resolve(new Peer(tcpTransport(socket), reset));
    });
  });
}

/** An independent peer connected to `port`, destroyed after the case. */
export async function connectPeer(t: CaseContext, port: number, host = '127.0.0.1'): Promise<Peer> {
  const transport = transportOf(t.subject);
  const peer = transport
    ? await (async () => {
        const raw = await transport(port, host);
        return new Peer(raw, () => raw.destroy());
      })()
    : await tcpPeer(port, host);
  t.defer(() => peer.destroy());
  return peer;
}

/** True if `port` on 127.0.0.1 can be bound right now (by `node:net`, released at once). */
export function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** A port held by a `node:net` server of the test process (not the backend), until the case ends. */
export function heldPort(t: CaseContext): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      t.defer(() => new Promise<void>((done) => server.close(() => done())));
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

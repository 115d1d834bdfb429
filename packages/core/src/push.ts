/**
 * The glue every push runtime (node:net, Bun, uWS) needs to meet the pull-style seam: written once
 * here so that the backends stay short and cannot drift apart.
 */
import type { Connection } from './backend.js';
import { PullQueue } from './queue.js';

/** The error of a write on a connection that is closed: the same message shape and `code` everywhere. */
export function connectionClosed(what = 'write'): Error & { code: string } {
  return Object.assign(new Error(`${what}: the connection is closed (EPIPE)`), { code: 'EPIPE' });
}

/** What a runtime's socket offers to stop and restart delivering data. */
export interface PausableSource {
  pause(): void;
  resume(): void;
}

/**
 * Bytes a connection may queue unread before its source is paused: enough that a busy reader
 * never waits for the runtime, small enough that a reader that stops holds little (R16a).
 */
const READ_AHEAD_BYTES = 128 * 1024;

/**
 * Bounded read-ahead for a connection whose runtime pushes data: `push` what arrives, `read` it
 * back in order. The source starts paused (a connection waiting in the accept queue reads nothing,
 * R2), unless told it is flowing; it is resumed while a reader waits or the queue has room, and
 * paused again once the queue is full, so a slow consumer slows the peer down.
 */
export class ReadAhead {
  readonly #source: PausableSource;
  // Created when a chunk must wait for its reader: an idle connection holds no array.
  #chunks: Uint8Array[] | null = null;
  #queued = 0;
  #waiter: ((chunk: Uint8Array | null) => void) | null = null;
  #paused: boolean;
  #ended = false;

  /** `flowing`: the source is delivering already (it is paused once the queue is full, not before). */
  constructor(source: PausableSource, options: { flowing?: boolean } = {}) {
    this.#source = source;
    this.#paused = !options.flowing;
  }

  /** The runtime's data. */
  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = null;
      waiter(chunk);
      return;
    }
    if (this.#chunks === null) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= READ_AHEAD_BYTES) this.#pause();
  }

  /** End of input (the peer's FIN, a reset, or the connection closed): queued chunks are still read. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.(null);
  }

  /** The connection was destroyed: what is queued is dropped, and reads give null. */
  destroy(): void {
    this.#chunks = null;
    this.#queued = 0;
    this.end();
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The seam's `read()`: the next chunk, or null once input has ended and everything queued was read. */
  read(): Promise<Uint8Array | null> {
    const chunk = this.#chunks?.shift();
    if (chunk !== undefined) {
      this.#queued -= chunk.length;
      if (this.#chunks?.length === 0) this.#chunks = null;
      if (this.#queued < READ_AHEAD_BYTES / 2) this.#resume();
      return Promise.resolve(chunk);
    }
    if (this.#ended) return Promise.resolve(null);
    this.#resume();
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  #pause(): void {
    if (this.#paused || this.#ended) return;
    this.#paused = true;
    this.#source.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#ended) return;
    this.#paused = false;
    this.#source.resume();
  }
}

/**
 * The connections a push runtime has accepted, kept in the kernel's order until core asks for them
 * (R2). Once closed, what is queued and what still arrives is destroyed.
 */
export class AcceptQueue {
  readonly #queue = new PullQueue<Connection>({ highWater: Number.POSITIVE_INFINITY });

  /** A connection the runtime accepted. */
  push(connection: Connection): void {
    if (this.#queue.ended) connection.destroy();
    else this.#queue.push(connection);
  }

  /** A failure to accept: the next `accept()` rejects with it; later ones go on. */
  fail(error: unknown): void {
    this.#queue.fail(error);
  }

  get closed(): boolean {
    return this.#queue.ended;
  }

  /** The seam's `accept()`. */
  accept(): Promise<Connection | null> {
    return this.#queue.pull();
  }

  /** Destroys the connections nobody took; pending and later `accept()` calls give null. */
  close(): void {
    for (const waiting of this.#queue.clear()) waiting.destroy();
  }
}

import { setImmediate } from 'node:timers';
import type { Connection } from './backend.js';
import { closeSession } from './process.js';
import {
  type AddressAndPort,
  getSocketAddress,
  getSocketPeerAddress,
  SocketHandle,
  streamMadeOn,
} from './sockets.js';
import type { SslClientContext, SslServerContext } from './ssl.js';
import { attachSsl } from './starttls.js';
import {
  checkKnown,
  checkStreamOptions,
  type Direction,
  describe,
  type ElementType,
  type StreamOptions,
} from './validate.js';

export type { Direction, ElementType, StreamOptions } from './validate.js';

export interface SocketStreamOptions extends StreamOptions {
  socket: Connection;
  /** R22: start TLS on the connected socket at once (`attachSsl`); `handshake` settles when it is done. */
  sslCtx?: SslServerContext | SslClientContext | true | null;
  /** Must agree with `sslCtx`'s side when given. */
  sslSide?: 'server' | 'client';
  handshakeTimeout?: number;
  tlsextHostName?: string;
}

/**
 * R16a: the bytes a stream holds that the kernel has not taken (buffered, plus the write in
 * flight) stay under this; a write that takes them past it waits until the peer has taken enough.
 */
const OUTPUT_BUFFER = 64 * 1024;
/** How long `close()` keeps draining a peer that still sends, before it resets the connection. */
const LINGER_S = 2;
const NEWLINE = 0x0a;
const RETURN = 0x0d;
const TIMED_OUT = Symbol('timed out');
const EMPTY = new Uint8Array(0);
/** The promise of a write that took no waiting: one shared object, so the hot path allocates none. */
const RESOLVED: Promise<void> = Promise.resolve();

const encoder = new TextEncoder();
// R16c: a byte-order mark is a character like any other; malformed bytes become U+FFFD.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

const knownOptions = new Set([
  'socket',
  'direction',
  'elementType',
  'readTimeout',
  'writeTimeout',
  'lineLimit',
  'sslCtx',
  'sslSide',
  'handshakeTimeout',
  'tlsextHostName',
]);

function isConnection(value: unknown): value is Connection {
  const c = value as Connection | null;
  return typeof c === 'object' && c !== null && typeof c.read === 'function' && typeof c.write === 'function';
}

/** Resolves to the promise's value, or `TIMED_OUT` after `seconds`; the timer never outlives the race. */
function withTimeout<T>(promise: Promise<T>, seconds: number | null): Promise<T | typeof TIMED_OUT> {
  if (seconds === null) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const data = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  return data;
}

/**
 * The bytes as a string if every one of them is ASCII, else null. Valid UTF-8 other than ASCII
 * decodes to fewer code units than bytes, and a malformed byte to U+FFFD: so one character per
 * byte and no U+FFFD means ASCII (a U+FFFD search in a one-byte string costs V8 nothing).
 */
function asciiText(bytes: Uint8Array): string | null {
  const text = decoder.decode(bytes);
  return text.length === bytes.length && !text.includes('\ufffd') ? text : null;
}

/** The number of bytes of the UTF-8 sequence that starts with `lead`; 1 for a byte that starts none. */
function utf8Length(lead: number): number {
  if (lead < 0xc2 || lead > 0xf4) return 1;
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  return 2;
}

/** The bytes that may follow `lead` (no overlong forms, no surrogates, nothing past U+10FFFF). */
function secondByteRange(lead: number): [number, number] {
  if (lead === 0xe0) return [0xa0, 0xbf];
  if (lead === 0xed) return [0x80, 0x9f];
  if (lead === 0xf0) return [0x90, 0xbf];
  if (lead === 0xf4) return [0x80, 0x8f];
  return [0x80, 0xbf];
}

/** Set by `SocketStream`'s static block: flush a stream whose `forceOutput` is due. */
let flushForced: (stream: SocketStream) => void;
let flushQueued: (stream: SocketStream) => void;

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

function settle(waiters: readonly Waiter[], error: Error | null): void {
  for (const waiter of waiters) {
    if (error) waiter.reject(error);
    else waiter.resolve();
  }
}

/** `comm:socket-stream`: a buffered, bivalent (text and bytes) stream over a socket handle. */
export class SocketStream {
  readonly socket: Connection;
  readonly direction: Direction;
  readonly elementType: ElementType;
  readonly readTimeout: number | null;
  readonly writeTimeout: number | null;
  readonly lineLimit: number;

  // Input: `#in[#inStart..]` is unread; `#scanned` bytes of it are known to hold no newline.
  #in: Uint8Array = EMPTY;
  /**
   * `#in` decoded, when every byte of it is ASCII (then byte and character offsets agree, and a
   * line is a slice of this string: one decode per chunk instead of one per line); null when it
   * is not, undefined until `readLine` needs it.
   */
  #inText: string | null | undefined = undefined;
  #inStart = 0;
  #scanned = 0;
  #eof = false;
  /** R16d: a line went past the limit; its rest is dropped as it arrives, up to and with its newline. */
  #discarding = false;
  #pendingRead: Promise<Uint8Array | null> | null = null;

  // Output: encoded chunks, then text not yet encoded (encoded once per flush, not once per line).
  // Arrays only while in use: an idle stream holds none.
  #chunks: Uint8Array[] | null = null;
  #chunkBytes = 0;
  #text = '';
  /** Bytes of the write handed to the socket that it has not taken yet. */
  #inFlight = 0;
  /** `forceOutput` was called: send what is buffered at the end of this turn, or when the write in flight ends. */
  #forced = false;
  #flushQueued = false;
  #roomWaiters: Waiter[] | null = null;
  #sentWaiters: Waiter[] | null = null;
  #writeError: Error | null = null;
  #closed = false;
  #closingSession = false;

  constructor(options: SocketStreamOptions) {
    if (options === null || typeof options !== 'object')
      throw new TypeError(`SocketStream: options must be an object, not ${describe(options)}`);
    checkKnown('SocketStream', options, knownOptions);
    if (!isConnection(options.socket))
      throw new TypeError(
        `SocketStream: option "socket" must be a socket handle, not ${describe(options.socket)}`,
      );
    const settings = checkStreamOptions('SocketStream', options);
    this.socket = options.socket;
    this.direction = settings.direction;
    this.elementType = settings.elementType;
    this.readTimeout = settings.readTimeout;
    this.writeTimeout = settings.writeTimeout;
    this.lineLimit = settings.lineLimit;
    if (options.socket instanceof SocketHandle) streamMadeOn(options.socket, this);
    if (options.sslCtx != null) {
      const { sslCtx, sslSide, handshakeTimeout, tlsextHostName } = options;
      this.handshake = attachSsl(this, { sslCtx, sslSide, handshakeTimeout, tlsextHostName });
      // A failed handshake closes the stream, which its reads and writes then say; awaiting this is optional.
      this.handshake.catch(() => {});
    } else if (
      options.sslSide !== undefined ||
      options.handshakeTimeout !== undefined ||
      options.tlsextHostName !== undefined
    )
      throw new TypeError(
        'SocketStream: options "sslSide", "handshakeTimeout" and "tlsextHostName" are for TLS, and "sslCtx" is not given',
      );
  }

  /** Settles once a TLS handshake asked for by `sslCtx` is done (rejects if it failed); resolved without TLS. */
  readonly handshake: Promise<void> = RESOLVED;

  get closed(): boolean {
    return this.#closed;
  }

  // ---- input ----

  #checkInput(): void {
    if (this.direction === 'output')
      throw new Error('SocketStream: this stream has direction output and cannot be read');
  }

  /** Bytes received and buffered that no read has taken yet. */
  get unread(): number {
    return this.#buffered;
  }

  get #buffered(): number {
    return this.#in.length - this.#inStart;
  }

  /** Reads more bytes into the buffer; false at end of file or after `readTimeout` seconds of silence. */
  async #fill(): Promise<boolean> {
    const before = this.#buffered;
    for (;;) {
      const reading = this.#read();
      if (reading === null || !this.#received(await reading)) return false;
      // A chunk can add nothing: empty, or all of it the rest of an over-long line (R16d).
      if (this.#buffered > before) return true;
    }
  }

  /** The next chunk's read, or null at end of file. */
  #read(): Promise<Uint8Array | null | typeof TIMED_OUT> | null {
    if (this.#eof || this.#closed) return null;
    // Everything read so far is dealt with: what the handler forced goes out now, in one write,
    // rather than at the end of the turn (flush consolidation at no cost in latency).
    if (this.#forced) this.#flush();
    this.#pendingRead ??= this.socket.read();
    // A timed-out read stays pending and serves the next call: the seam allows one read at a time.
    return this.readTimeout === null ? this.#pendingRead : withTimeout(this.#pendingRead, this.readTimeout);
  }

  /** Appends what a read gave to the buffer; false at end of file or on a timeout. */
  #received(chunk: Uint8Array | null | typeof TIMED_OUT): boolean {
    if (chunk === TIMED_OUT) return false;
    this.#pendingRead = null;
    if (chunk === null) {
      this.#eof = true;
      return false;
    }
    if (this.#discarding) {
      const newline = chunk.indexOf(NEWLINE);
      if (newline < 0) return true;
      this.#discarding = false;
      chunk = chunk.subarray(newline + 1);
    }
    const buffered = this.#buffered;
    if (buffered === 0) {
      this.#in = chunk;
    } else {
      const joined = new Uint8Array(buffered + chunk.length);
      joined.set(this.#in.subarray(this.#inStart));
      joined.set(chunk, buffered);
      this.#in = joined;
    }
    this.#inText = undefined;
    this.#inStart = 0;
    return true;
  }

  #take(count: number): Uint8Array {
    const bytes = this.#in.subarray(this.#inStart, this.#inStart + count);
    this.#inStart += count;
    this.#scanned = 0;
    if (this.#inStart === this.#in.length) this.#dropInput();
    return bytes;
  }

  /** Forgets the consumed buffer, so that an idle connection holds no chunk it has already read. */
  #dropInput(): void {
    this.#in = EMPTY;
    this.#inText = undefined;
    this.#inStart = 0;
    this.#scanned = 0;
  }

  /** A whole line from the buffer, without its newline (nor a `\r` before it); undefined if none is buffered yet. */
  #bufferedLine(): string | undefined {
    const start = this.#inStart;
    const bytes = this.#in;
    if (this.#inText === undefined) this.#inText = asciiText(bytes);
    const text = this.#inText;
    const newline =
      text === null
        ? bytes.indexOf(NEWLINE, start + this.#scanned)
        : text.indexOf('\n', start + this.#scanned);
    if (newline < 0) {
      this.#scanned = bytes.length - start;
      if (this.#scanned > this.lineLimit) {
        // R16d: what was read of the line is dropped (keeping it is the unbounded memory the
        // limit prevents), and so is the rest of it as it arrives.
        this.#dropInput();
        this.#discarding = true;
        throw this.#lineTooLong();
      }
      return undefined;
    }
    if (newline - start > this.lineLimit) {
      // The whole line is here: drop it alone, and the lines after it stay readable (R16d).
      this.#inStart = newline + 1;
      this.#scanned = 0;
      if (this.#inStart === bytes.length) this.#dropInput();
      throw this.#lineTooLong();
    }
    const end = newline > start && bytes[newline - 1] === RETURN ? newline - 1 : newline;
    const line =
      end === start
        ? ''
        : text === null
          ? decoder.decode(bytes.subarray(start, end))
          : text.slice(start, end);
    this.#inStart = newline + 1;
    this.#scanned = 0;
    if (this.#inStart === bytes.length) this.#dropInput();
    return line;
  }

  /** The next line without its newline (nor a `\r` before it); at end of file the unterminated rest, or null. */
  readLine(): Promise<string | null> {
    try {
      this.#checkInput();
      const line = this.#bufferedLine();
      // A line already buffered costs no read and no extra promise.
      if (line !== undefined) return Promise.resolve(line);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#readLineWaiting();
  }

  async #readLineWaiting(): Promise<string | null> {
    for (;;) {
      // #fill() inlined: one promise less per line that had to wait.
      const reading = this.#read();
      if (reading === null || !this.#received(await reading)) {
        if (this.#buffered === 0) return null;
        return decoder.decode(this.#take(this.#buffered));
      }
      const line = this.#bufferedLine();
      if (line !== undefined) return line;
    }
  }

  #lineTooLong(): RangeError {
    return new RangeError(`SocketStream: line longer than the line limit of ${this.lineLimit} bytes`);
  }

  /** The next character (UTF-8), or null at end of file; a malformed sequence is one U+FFFD. */
  async readChar(): Promise<string | null> {
    this.#checkInput();
    if (this.#buffered === 0 && !(await this.#fill())) return null;
    const lead = this.#in[this.#inStart] as number;
    const want = utf8Length(lead);
    let have = 1;
    while (have < want) {
      if (this.#buffered <= have && !(await this.#fill())) break;
      const next = this.#in[this.#inStart + have] as number;
      const [low, high] = have === 1 ? secondByteRange(lead) : [0x80, 0xbf];
      if (next < low || next > high) break;
      have++;
    }
    // A sequence cut short is replaced as a whole (its maximal valid part), as TextDecoder does.
    if (have < want) {
      this.#take(have);
      return '\ufffd';
    }
    return decoder.decode(this.#take(want));
  }

  /** The next byte, or null at end of file. */
  async readByte(): Promise<number | null> {
    this.#checkInput();
    if (this.#buffered === 0 && !(await this.#fill())) return null;
    return this.#take(1)[0] as number;
  }

  /** Fills `target[start..end)` and resolves to the index after the last byte stored (less than `end` at end of file). */
  async readSequence(target: Uint8Array, start = 0, end = target.length): Promise<number> {
    this.#checkInput();
    let at = start;
    while (at < end) {
      if (this.#buffered === 0 && !(await this.#fill())) break;
      const n = Math.min(end - at, this.#buffered);
      target.set(this.#take(n), at);
      at += n;
    }
    return at;
  }

  /** Whatever bytes are buffered or arrive next, or null at end of file: the cheap way to copy a stream. */
  async readAvailable(): Promise<Uint8Array | null> {
    this.#checkInput();
    if (this.#buffered === 0 && !(await this.#fill())) return null;
    return this.#take(this.#buffered).slice();
  }

  // ---- output ----

  #checkOutput(): Error | null {
    if (this.direction === 'input')
      return new Error('SocketStream: this stream has direction input and cannot be written');
    if (this.#closed) return new Error('SocketStream: the stream is closed');
    return this.#writeError;
  }

  #putText(text: string): Promise<void> {
    const refused = this.#checkOutput();
    if (refused) return Promise.reject(refused);
    this.#text += text;
    return this.#room();
  }

  #putBytes(bytes: Uint8Array): Promise<void> {
    const refused = this.#checkOutput();
    if (refused) return Promise.reject(refused);
    this.#encodeText();
    if (this.#chunks === null) this.#chunks = [bytes];
    else this.#chunks.push(bytes);
    this.#chunkBytes += bytes.length;
    return this.#room();
  }

  /** Moves the pending text into the chunks, as UTF-8. */
  #encodeText(): void {
    if (this.#text === '') return;
    const bytes = encoder.encode(this.#text);
    this.#text = '';
    if (this.#chunks === null) this.#chunks = [bytes];
    else this.#chunks.push(bytes);
    this.#chunkBytes += bytes.length;
  }

  /**
   * R16a: resolves at once while what the stream holds is under the output buffer; past it, sends
   * what is buffered (forced or not) and resolves once the peer has taken enough.
   */
  #room(): Promise<void> {
    // A UTF-16 code unit is at most 3 bytes of UTF-8: below this, the exact count is not needed.
    if (this.#chunkBytes + this.#inFlight + 3 * this.#text.length < OUTPUT_BUFFER) return RESOLVED;
    this.#encodeText();
    if (this.#chunkBytes + this.#inFlight < OUTPUT_BUFFER) return RESOLVED;
    this.#flush();
    if (this.#writeError) return Promise.reject(this.#writeError);
    if (this.#chunkBytes + this.#inFlight < OUTPUT_BUFFER) return RESOLVED;
    return new Promise((resolve, reject) => {
      this.#roomWaiters ??= [];
      this.#roomWaiters.push({ resolve, reject });
    });
  }

  writeString(text: string): Promise<void> {
    return this.#putText(text);
  }

  writeLine(text: string): Promise<void> {
    return this.#putText(`${text}\n`);
  }

  writeChar(char: string): Promise<void> {
    if (typeof char !== 'string' || [...char].length !== 1)
      return Promise.reject(
        new TypeError(`SocketStream: writeChar takes one character, not ${describe(char)}`),
      );
    return this.#putText(char);
  }

  writeByte(byte: number): Promise<void> {
    if (!Number.isInteger(byte) || byte < 0 || byte > 255)
      return Promise.reject(
        new TypeError(`SocketStream: writeByte takes an integer 0-255, not ${describe(byte)}`),
      );
    return this.#putBytes(Uint8Array.of(byte));
  }

  writeSequence(bytes: Uint8Array | readonly number[], start = 0, end = bytes.length): Promise<void> {
    const copy =
      bytes instanceof Uint8Array ? bytes.slice(start, end) : Uint8Array.from(bytes.slice(start, end));
    return this.#putBytes(copy);
  }

  /**
   * Starts sending what is buffered, without waiting: no later than the end of this turn of the
   * event loop, so that what is written and forced within one turn leaves in one write (R16b).
   */
  forceOutput(): void {
    if (this.#forced) return;
    this.#forced = true;
    flushAfterThisTask(this);
  }

  static {
    // Kept off the public surface: the two moments a forced stream is flushed at the latest.
    flushForced = (stream) => {
      if (!stream.#forced) return;
      // Input is still buffered: the handler is reading, and flushes when it waits for more (#fill),
      // after the replies to everything buffered. If it stops reading, the end of the turn does.
      if (stream.#buffered > 0) {
        if (stream.#flushQueued) return;
        stream.#flushQueued = true;
        flushAtEndOfTurn(stream);
      } else stream.#flush();
    };
    flushQueued = (stream) => {
      stream.#flushQueued = false;
      if (stream.#forced) stream.#flush();
    };
  }

  /** Hands everything buffered to the socket in one write, unless a write is in flight (it is sent when that ends). */
  #flush(): void {
    if (this.#inFlight > 0 || this.#writeError) return;
    this.#forced = false;
    if (this.#chunkBytes === 0 && this.#text === '') {
      this.#settleSent(null);
      return;
    }
    const socket = this.socket;
    let pending: Promise<void> | undefined;
    try {
      if (this.#chunks === null && socket.writeText !== undefined) {
        // Only text: the runtime encodes it straight into its write, with no copy of ours.
        const text = this.#text;
        this.#text = '';
        this.#inFlight = text.length;
        pending = socket.writeText(text);
      } else {
        this.#encodeText();
        const size = this.#chunkBytes;
        const data = concat(this.#chunks as Uint8Array[], size);
        this.#chunks = null;
        this.#chunkBytes = 0;
        this.#inFlight = size;
        pending = socket.write(data);
      }
    } catch (error) {
      this.#failOutput(error);
      return;
    }
    if (pending === undefined) this.#written();
    else this.#await(pending);
  }

  /** A write the kernel did not take at once: wait for it, for `writeTimeout` seconds at most. */
  #await(pending: Promise<void>): void {
    const seconds = this.writeTimeout;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (seconds !== null)
      timer = setTimeout(() => {
        this.#failOutput(new Error(`SocketStream: write timed out: the peer took nothing for ${seconds} s`));
        this.socket.destroy();
      }, seconds * 1000);
    pending.then(
      () => {
        clearTimeout(timer);
        if (!this.#writeError) this.#written();
      },
      (error: unknown) => {
        clearTimeout(timer);
        this.#failOutput(error);
      },
    );
  }

  /** The write in flight was taken by the kernel. */
  #written(): void {
    this.#inFlight = 0;
    // What was forced meanwhile, or what fills the buffer, goes out now in one write.
    if (this.#forced || this.#chunkBytes + this.#text.length >= OUTPUT_BUFFER / 2) this.#flush();
    if (this.#chunkBytes + this.#inFlight + 3 * this.#text.length < OUTPUT_BUFFER) this.#settleRoom(null);
    if (this.#inFlight === 0 && this.#chunkBytes === 0 && this.#text === '') this.#settleSent(null);
  }

  #failOutput(error: unknown): void {
    if (this.#writeError) return;
    this.#writeError = error instanceof Error ? error : new Error(String(error));
    this.#inFlight = 0;
    this.#settleRoom(this.#writeError);
    this.#settleSent(this.#writeError);
  }

  #settleRoom(error: Error | null): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = null;
    if (waiters) settle(waiters, error);
  }

  #settleSent(error: Error | null): void {
    const waiters = this.#sentWaiters;
    this.#sentWaiters = null;
    if (waiters) settle(waiters, error);
  }

  /** Sends what is buffered and resolves once the socket has taken all of it. */
  finishOutput(): Promise<void> {
    this.#flush();
    if (this.#writeError) return Promise.reject(this.#writeError);
    if (this.#inFlight === 0 && this.#chunkBytes === 0 && this.#text === '') return RESOLVED;
    // A write is in flight: what was buffered since goes out when it ends.
    this.#forced = true;
    return new Promise((resolve, reject) => {
      this.#sentWaiters ??= [];
      this.#sentWaiters.push({ resolve, reject });
    });
  }

  /** Drops buffered output that has not been handed to the socket yet. */
  clearOutput(): void {
    this.#chunks = null;
    this.#chunkBytes = 0;
    this.#text = '';
    this.#settleRoom(null);
  }

  /**
   * Sends what is buffered, then closes the connection. With `abort`, closes at once and drops
   * unsent output. Resolves once closed; a failure to send the rest rejects after closing.
   */
  async close(options: { abort?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    let failure: unknown = null;
    let ended = false;
    if (!options.abort && this.direction !== 'input') {
      try {
        await this.finishOutput();
        await this.socket.end();
        ended = true;
      } catch (error) {
        failure = error;
      }
    }
    this.#closed = true;
    if (ended && !this.#eof) void this.#linger();
    else this.socket.destroy();
    if (failure) throw failure;
  }

  /**
   * @internal R23: the library closes a session's stream when its function failed or its drain
   * time is over: output is flushed and the peer gets a FIN, but a peer that reads nothing
   * cannot hold the close up for longer than the linger.
   */
  [closeSession](): void {
    if (this.#closed || this.#closingSession) return;
    this.#closingSession = true;
    const abort = setTimeout(() => {
      this.close({ abort: true }).catch(() => {});
    }, LINGER_S * 1000);
    this.close()
      .catch(() => {})
      .finally(() => clearTimeout(abort));
  }

  /**
   * Closing a socket with unread input makes the kernel send a reset, and the peer may then lose
   * the reply it had not read yet. So after our FIN, input is read and dropped until the peer
   * closes too, for a few seconds at most, and only then is the socket destroyed.
   */
  async #linger(): Promise<void> {
    this.#dropInput();
    const until = Date.now() + LINGER_S * 1000;
    try {
      for (;;) {
        const left = (until - Date.now()) / 1000;
        if (left <= 0) break;
        this.#pendingRead ??= this.socket.read();
        const chunk = await withTimeout(this.#pendingRead, left);
        if (chunk === TIMED_OUT || chunk === null) break;
        this.#pendingRead = null;
      }
    } catch {
      // a failed read ends the wait just as well
    } finally {
      this.socket.destroy();
    }
  }
}

/** Calls `each` for every stream queued before `schedule` runs the batch: one callback for all. */
function batch(schedule: (run: () => void) => void, each: (stream: SocketStream) => void) {
  let queued: SocketStream[] = [];
  const run = () => {
    const due = queued;
    queued = [];
    for (const stream of due) each(stream);
  };
  return (stream: SocketStream): void => {
    if (queued.length === 0) schedule(run);
    queued.push(stream);
  };
}

/**
 * Streams whose `forceOutput` was called: flushed once the code that called it has run to its
 * next await, so that what it writes and forces meanwhile leaves in one write.
 */
const flushAfterThisTask = batch(queueMicrotask, (stream) => flushForced(stream));

/** Streams left to the end of the turn, flushed once the turn's I/O callbacks have run. */
const flushAtEndOfTurn = batch(setImmediate, (stream) => flushQueued(stream));

/** `[address, port]` of the stream's local end, `[null, null]` once closed. */
export function socketStreamAddress(stream: SocketStream): AddressAndPort {
  return stream.closed ? [null, null] : getSocketAddress(stream.socket);
}

/** `[address, port]` of the stream's peer, `[null, null]` once closed. */
export function socketStreamPeerAddress(stream: SocketStream): AddressAndPort {
  return stream.closed ? [null, null] : getSocketPeerAddress(stream.socket);
}

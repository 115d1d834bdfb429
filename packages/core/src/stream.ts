import type { Connection } from './backend.js';
import { checkKnown, describe } from './options.js';
import { type AddressAndPort, getSocketAddress, getSocketPeerAddress } from './sockets.js';

export type Direction = 'input' | 'output' | 'io';
/** Lisp's element types; every stream is bivalent, so this records intent and nothing more. */
export type ElementType = 'base-char' | 'character' | 'unsigned-byte';

export interface SocketStreamOptions {
  socket: Connection;
  direction?: Direction;
  elementType?: ElementType;
  /** Seconds without input after which a read sees end of file; null waits for ever. */
  readTimeout?: number | null;
  /** Seconds a write may take to be taken by the peer before it fails; null waits for ever. */
  writeTimeout?: number | null;
  /** The longest line `readLine` accepts, in bytes. */
  lineLimit?: number;
}

/** A write beyond this many buffered bytes waits for the peer: the sender's memory stays bounded. */
const OUTPUT_BUFFER = 64 * 1024;
const DEFAULT_LINE_LIMIT = 1024 * 1024;
/** How long `close()` keeps draining a peer that still sends, before it resets the connection. */
const LINGER_S = 2;
const NEWLINE = 0x0a;
const TIMED_OUT = Symbol('timed out');

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

const knownOptions = new Set([
  'socket',
  'direction',
  'elementType',
  'readTimeout',
  'writeTimeout',
  'lineLimit',
]);

function checkSeconds(option: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw new TypeError(
      `SocketStream: option "${option}" must be a positive number of seconds or null, not ${describe(value)}`,
    );
  return value;
}

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

/** The number of bytes of the UTF-8 sequence that starts with `lead`. */
function utf8Length(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  if (lead >= 0xc0) return 2;
  return 1; // a stray continuation byte decodes as U+FFFD on its own
}

/** `comm:socket-stream`: a buffered, bivalent (text and bytes) stream over a socket handle. */
export class SocketStream {
  readonly socket: Connection;
  readonly direction: Direction;
  readonly elementType: ElementType;
  readonly readTimeout: number | null;
  readonly writeTimeout: number | null;
  readonly lineLimit: number;

  #in: Uint8Array = new Uint8Array(0);
  #inStart = 0;
  #eof = false;
  #pendingRead: Promise<Uint8Array | null> | null = null;

  #out: Uint8Array[] = [];
  #outSize = 0;
  #sending: Promise<void> = Promise.resolve();
  #writeError: Error | null = null;
  #closed = false;

  constructor(options: SocketStreamOptions) {
    if (options === null || typeof options !== 'object')
      throw new TypeError(`SocketStream: options must be an object, not ${describe(options)}`);
    checkKnown('SocketStream', options, knownOptions);
    if (!isConnection(options.socket))
      throw new TypeError(
        `SocketStream: option "socket" must be a socket handle, not ${describe(options.socket)}`,
      );
    const direction = options.direction ?? 'io';
    if (direction !== 'input' && direction !== 'output' && direction !== 'io')
      throw new TypeError(
        `SocketStream: option "direction" must be 'input', 'output' or 'io', not ${describe(direction)}`,
      );
    const elementType = options.elementType ?? 'base-char';
    if (elementType !== 'base-char' && elementType !== 'character' && elementType !== 'unsigned-byte')
      throw new TypeError(
        `SocketStream: option "elementType" must be 'base-char', 'character' or 'unsigned-byte', not ${describe(elementType)}`,
      );
    const lineLimit = options.lineLimit ?? DEFAULT_LINE_LIMIT;
    if (!Number.isInteger(lineLimit) || lineLimit <= 0)
      throw new TypeError(
        `SocketStream: option "lineLimit" must be a positive integer, not ${describe(lineLimit)}`,
      );
    this.socket = options.socket;
    this.direction = direction;
    this.elementType = elementType;
    this.readTimeout = checkSeconds('readTimeout', options.readTimeout);
    this.writeTimeout = checkSeconds('writeTimeout', options.writeTimeout);
    this.lineLimit = lineLimit;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- input ----

  #checkInput(): void {
    if (this.direction === 'output')
      throw new Error('SocketStream: this stream has direction output and cannot be read');
  }

  get #buffered(): number {
    return this.#in.length - this.#inStart;
  }

  /** Reads more bytes into the buffer; false at end of file or after `readTimeout` seconds of silence. */
  async #fill(): Promise<boolean> {
    if (this.#eof || this.#closed) return false;
    this.#pendingRead ??= this.socket.read();
    // A timed-out read stays pending and serves the next call: the seam allows one read at a time.
    const chunk = await withTimeout(this.#pendingRead, this.readTimeout);
    if (chunk === TIMED_OUT) return false;
    this.#pendingRead = null;
    if (chunk === null) {
      this.#eof = true;
      return false;
    }
    if (this.#buffered === 0) {
      this.#in = chunk;
    } else {
      const joined = new Uint8Array(this.#buffered + chunk.length);
      joined.set(this.#in.subarray(this.#inStart));
      joined.set(chunk, this.#buffered);
      this.#in = joined;
    }
    this.#inStart = 0;
    return true;
  }

  #take(count: number): Uint8Array {
    const bytes = this.#in.subarray(this.#inStart, this.#inStart + count);
    this.#inStart += count;
    return bytes;
  }

  /** The next line without its newline (nor a `\r` before it); at end of file the unterminated rest, or null. */
  async readLine(): Promise<string | null> {
    this.#checkInput();
    let scanned = 0;
    for (;;) {
      const newline = this.#in.subarray(this.#inStart + scanned).indexOf(NEWLINE);
      if (newline >= 0) {
        const end = scanned + newline;
        if (end > this.lineLimit) throw this.#lineTooLong();
        const bytes = this.#take(end + 1);
        const line = decoder.decode(bytes.subarray(0, end));
        return line.endsWith('\r') ? line.slice(0, -1) : line;
      }
      scanned = this.#buffered;
      if (scanned > this.lineLimit) throw this.#lineTooLong();
      if (!(await this.#fill())) {
        if (this.#buffered === 0) return null;
        return decoder.decode(this.#take(this.#buffered));
      }
    }
  }

  #lineTooLong(): RangeError {
    // What was read of the line is dropped: keeping it is exactly the unbounded memory the limit prevents.
    this.#in = new Uint8Array(0);
    this.#inStart = 0;
    return new RangeError(`SocketStream: line longer than the line limit of ${this.lineLimit} bytes`);
  }

  /** The next character (UTF-8), or null at end of file. */
  async readChar(): Promise<string | null> {
    this.#checkInput();
    if (this.#buffered === 0 && !(await this.#fill())) return null;
    const want = utf8Length(this.#in[this.#inStart] as number);
    while (this.#buffered < want) if (!(await this.#fill())) break;
    return decoder.decode(this.#take(Math.min(want, this.#buffered)));
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

  #checkOutput(): void {
    if (this.direction === 'input')
      throw new Error('SocketStream: this stream has direction input and cannot be written');
    if (this.#closed) throw new Error('SocketStream: the stream is closed');
  }

  /** Buffers bytes; past the buffer size it sends them and waits until the peer has taken them. */
  async #put(bytes: Uint8Array): Promise<void> {
    this.#checkOutput();
    if (this.#writeError) throw this.#writeError;
    this.#out.push(bytes);
    this.#outSize += bytes.length;
    if (this.#outSize >= OUTPUT_BUFFER) await this.finishOutput();
  }

  writeString(text: string): Promise<void> {
    return this.#put(encoder.encode(text));
  }

  writeLine(text: string): Promise<void> {
    return this.#put(encoder.encode(`${text}\n`));
  }

  writeChar(char: string): Promise<void> {
    if (typeof char !== 'string' || [...char].length !== 1)
      return Promise.reject(
        new TypeError(`SocketStream: writeChar takes one character, not ${describe(char)}`),
      );
    return this.#put(encoder.encode(char));
  }

  writeByte(byte: number): Promise<void> {
    if (!Number.isInteger(byte) || byte < 0 || byte > 255)
      return Promise.reject(
        new TypeError(`SocketStream: writeByte takes an integer 0-255, not ${describe(byte)}`),
      );
    return this.#put(Uint8Array.of(byte));
  }

  writeSequence(bytes: Uint8Array | readonly number[], start = 0, end = bytes.length): Promise<void> {
    const copy =
      bytes instanceof Uint8Array ? bytes.slice(start, end) : Uint8Array.from(bytes.slice(start, end));
    return this.#put(copy);
  }

  /** Starts sending what is buffered, without waiting. */
  forceOutput(): void {
    if (this.#outSize === 0) return;
    const chunks = this.#out;
    const size = this.#outSize;
    this.#out = [];
    this.#outSize = 0;
    this.#sending = this.#sending.then(() => this.#send(chunks, size));
  }

  async #send(chunks: Uint8Array[], size: number): Promise<void> {
    if (this.#writeError) return;
    let data: Uint8Array;
    if (chunks.length === 1) data = chunks[0] as Uint8Array;
    else {
      data = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        data.set(chunk, at);
        at += chunk.length;
      }
    }
    try {
      const result = await withTimeout(this.socket.write(data), this.writeTimeout);
      if (result === TIMED_OUT) {
        this.#writeError = new Error(
          `SocketStream: write timed out: the peer took nothing for ${this.writeTimeout} s`,
        );
        this.socket.destroy();
      }
    } catch (error) {
      this.#writeError = error instanceof Error ? error : new Error(String(error));
    }
  }

  /** Sends what is buffered and resolves once the socket has taken all of it. */
  async finishOutput(): Promise<void> {
    this.forceOutput();
    await this.#sending;
    if (this.#writeError) throw this.#writeError;
  }

  /** Drops buffered output that has not been handed to the socket yet. */
  clearOutput(): void {
    this.#out = [];
    this.#outSize = 0;
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
   * Closing a socket with unread input makes the kernel send a reset, and the peer may then lose
   * the reply it had not read yet. So after our FIN, input is read and dropped until the peer
   * closes too, for a few seconds at most, and only then is the socket destroyed.
   */
  async #linger(): Promise<void> {
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

/** `[address, port]` of the stream's local end, `[null, null]` once closed. */
export function socketStreamAddress(stream: SocketStream): AddressAndPort {
  return stream.closed ? [null, null] : getSocketAddress(stream.socket);
}

/** `[address, port]` of the stream's peer, `[null, null]` once closed. */
export function socketStreamPeerAddress(stream: SocketStream): AddressAndPort {
  return stream.closed ? [null, null] : getSocketPeerAddress(stream.socket);
}

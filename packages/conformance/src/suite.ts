import { Buffer } from 'node:buffer';
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import type {
  AnyServerOptions,
  Backend,
  BoundApi,
  ConnectionError,
  Deviation,
  getSocketAddress,
  getSocketPeerAddress,
  ListeningSocket,
  processRunFunction,
  ServerProcess,
  SocketStream,
  StartUpServerResult,
  StartupCondition,
  socketStreamAddress,
  socketStreamPeerAddress,
} from '@comm/core/backend';

/** What a backend package exports: the contract bound to its backend (`@comm/node` and its siblings). */
export interface BackendModule {
  readonly backend: Backend;
  readonly startUpServer: BoundApi['startUpServer'];
  readonly serverTerminate: BoundApi['serverTerminate'];
  readonly openTcpStream: BoundApi['openTcpStream'];
  readonly SocketStream: typeof SocketStream;
  readonly processRunFunction: typeof processRunFunction;
  readonly getSocketAddress: typeof getSocketAddress;
  readonly getSocketPeerAddress: typeof getSocketPeerAddress;
  readonly socketStreamAddress: typeof socketStreamAddress;
  readonly socketStreamPeerAddress: typeof socketStreamPeerAddress;
  readonly ListeningSocket: typeof ListeningSocket;
  readonly ConnectionError: typeof ConnectionError;
  readonly StartupCondition: typeof StartupCondition;
  readonly [name: string]: unknown;
}

/** The backend under test, and how to run a fixture script in its runtime. */
export interface Subject {
  readonly api: BackendModule;
  /** A URL or absolute path that a child process can `import()` to get the same module. */
  readonly entry: string;
  /** The command that runs `script` with `args` in the backend's runtime; Node's by default. */
  readonly command?: (script: string, args: readonly string[]) => readonly string[];
  /**
   * How the suite's independent client reaches a server of this backend: TCP (`node:net`) by
   * default. A backend whose byte stream travels in another transport (uWS: WebSocket messages)
   * gives its own; when not given here, a `conformanceTransport` export of the module is used.
   */
  readonly transport?: (port: number, host: string) => Promise<RawTransport>;
}

/** What a case gets: the backend, and helpers that clean up after it whatever happens. */
export interface CaseContext {
  readonly api: BackendModule;
  readonly subject: Subject;
  /** Runs `fn` after the case, last registered first, pass or fail. */
  defer(fn: () => unknown): void;
  /** Starts a server with `wait: true` on loopback, port 0 unless given; fails the case if it does not start. */
  startServer(options?: AnyServerOptions): Promise<{ server: ServerProcess; port: number; host: string }>;
  /** An independent client (on `node:net`, or the subject's transport), closed after the case. */
  connect(port: number, host?: string): Promise<RawClient>;
  /** Polls `condition` every 10 ms until it holds; throws with `what` after `ms`. */
  waitFor(condition: () => boolean | Promise<boolean>, what: string, ms?: number): Promise<void>;
  sleep(ms: number): Promise<void>;
  /**
   * Runs `fixtures/<name>` in the backend's runtime as its own process group, with the backend's
   * entry as its first argument; the whole group is killed after the case.
   */
  spawnFixture(name: string, args?: readonly string[]): Fixture;
}

/** A child process running a fixture: its output as it comes, and how it ended. */
export interface Fixture {
  readonly child: ChildProcess;
  /** Resolves to the first stdout line matching `pattern` (its match), rejects if the child exits first. */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal's name) once the child has exited. */
  readonly exited: Promise<number | string>;
}

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
}

function spawnFixture(subject: Subject, name: string, args: readonly string[]): Fixture {
  const script = fixturePath(name);
  const argv = [subject.entry, ...args];
  const [command, ...rest] = subject.command
    ? subject.command(script, argv)
    : [process.execPath, script, ...argv];
  const child = spawn(command as string, rest, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners: Array<() => void> = [];
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    for (const wake of listeners.splice(0)) wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
      for (const wake of listeners.splice(0)) wake();
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async line(pattern) {
      for (;;) {
        for (const line of out.split('\n')) {
          const match = line.match(pattern);
          if (match) return match;
        }
        if (done) throw new Error(`fixture ${name} exited before printing ${pattern}; stderr: ${err.trim()}`);
        await new Promise<void>((resolve) => listeners.push(resolve));
      }
    },
  };
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

export interface Case {
  /** Stable id: `R<n>.<slug>`; deviations name these. */
  readonly id: string;
  readonly rule: string;
  /** The promise the case checks, as a sentence. */
  readonly title: string;
  readonly timeoutMs?: number;
  run(t: CaseContext): Promise<void>;
}

export const cases: Case[] = [];

/** Adds a case to the suite; its rule is the id's prefix. */
export function defineCase(
  id: string,
  title: string,
  run: (t: CaseContext) => Promise<void>,
  timeoutMs?: number,
): void {
  const rule = id.split('.')[0] as string;
  if (cases.some((c) => c.id === id)) throw new Error(`conformance: duplicate case id ${id}`);
  cases.push({ id, rule, title, run, ...(timeoutMs ? { timeoutMs } : {}) });
}

/**
 * The byte pipe under a `RawClient`: a TCP socket, or the transport a backend's clients use (a
 * WebSocket for uWS). `pause` stops reading from the network, so that the server meets backpressure.
 */
export interface RawTransport {
  /** The client's own TCP port (the server sees it as the peer's port). */
  readonly localPort: number;
  onData(listener: (chunk: Uint8Array) => void): void;
  /** Called once at the end of input: the peer's FIN, a close, or an error. */
  onEnd(listener: () => void): void;
  /** Resolves once the transport has taken `data` (as `net.Socket`'s write callback does). */
  write(data: Uint8Array): Promise<void>;
  /** Half-close: FIN, reading goes on. */
  end(): void;
  destroy(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): void;
}

/** A `net.Socket` as a `RawTransport`. */
export function tcpTransport(socket: net.Socket): RawTransport {
  const localPort = socket.localPort ?? 0;
  return {
    // A closed node:net socket no longer knows its port: read while connected.
    get localPort() {
      return socket.localPort ?? localPort;
    },
    onData: (listener) => void socket.on('data', (chunk: Buffer) => listener(chunk)),
    onEnd(listener) {
      socket.on('end', listener);
      socket.on('close', listener);
      socket.on('error', listener);
    },
    write: (data) =>
      new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve()))),
    end: () => void socket.end(),
    destroy: () => void socket.destroy(),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
    setNoDelay: (on) => void socket.setNoDelay(on),
  };
}

/** An independent client: reads lines and bytes without any @comm code in between. */
export class RawClient {
  readonly transport: RawTransport;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #waiters: Array<() => void> = [];

  constructor(transport: RawTransport) {
    this.transport = transport;
    transport.onData((chunk) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#notify();
    });
    transport.onEnd(() => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get ended(): boolean {
    return this.#ended;
  }

  get localPort(): number {
    return this.transport.localPort;
  }

  write(data: string | Uint8Array): Promise<void> {
    return this.transport.write(typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** Stops reading from the network (the server's writes meet backpressure), until `resume()`. */
  pause(): void {
    this.transport.pause();
  }

  resume(): void {
    this.transport.resume();
  }

  setNoDelay(on: boolean): void {
    this.transport.setNoDelay(on);
  }

  writeLine(line: string): Promise<void> {
    return this.write(`${line}\n`);
  }

  /** The next line without its newline; null at end of input. */
  async readLine(): Promise<string | null> {
    for (;;) {
      const at = this.#buffer.indexOf(0x0a);
      if (at >= 0) {
        const line = this.#buffer.subarray(0, at).toString('utf8');
        this.#buffer = this.#buffer.subarray(at + 1);
        return line;
      }
      if (this.#ended) {
        if (this.#buffer.length === 0) return null;
        const rest = this.#buffer.toString('utf8');
        this.#buffer = Buffer.alloc(0);
        return rest;
      }
      await this.#wait();
    }
  }

  /** Exactly `n` bytes, or fewer at end of input. */
  async readBytes(n: number): Promise<Buffer> {
    while (this.#buffer.length < n && !this.#ended) await this.#wait();
    const bytes = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(bytes.length);
    return bytes;
  }

  /** Everything until the peer closes. */
  async readAll(): Promise<Buffer> {
    while (!this.#ended) await this.#wait();
    const bytes = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return bytes;
  }

  /** Resolves once the peer has closed its side. */
  async closedByPeer(): Promise<void> {
    while (!this.#ended) await this.#wait();
  }

  /** Half-close: FIN, reading goes on. */
  end(): void {
    this.transport.end();
  }

  destroy(): void {
    this.transport.destroy();
  }
}

/** A raw client over TCP (`node:net`). */
export function rawConnect(port: number, host = '127.0.0.1'): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new RawClient(tcpTransport(socket)));
    });
  });
}

/** The subject's way to reach its servers: its own transport, the module's `conformanceTransport`, or TCP. */
export function clientTransport(
  subject: Subject,
): ((port: number, host: string) => Promise<RawTransport>) | null {
  if (subject.transport) return subject.transport;
  const exported = subject.api.conformanceTransport;
  return typeof exported === 'function'
    ? (exported as (port: number, host: string) => Promise<RawTransport>)
    : null;
}

/** Resolves to `promise`'s value, or rejects naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago (bound to 127.0.0.1 by the system, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type Outcome =
  | { readonly status: 'pass'; readonly ms: number }
  | { readonly status: 'fail'; readonly ms: number; readonly error: string }
  | { readonly status: 'deviation'; readonly reason: string; readonly upstream: string };

/** The backend's declared deviation that covers this case, if any. */
export function deviationFor(backend: Backend, c: Case): Deviation | undefined {
  return backend.deviations?.find((d) => d.cases.includes(c.id) || d.cases.includes(c.rule));
}

const DEFAULT_TIMEOUT_MS = 10_000;
const CLEANUP_TIMEOUT_MS = 5_000;

/** Runs one case against a subject, with its timeout and its cleanups; throws what the case threw. */
export async function runCase(c: Case, subject: Subject): Promise<void> {
  const cleanups: Array<() => unknown> = [];
  const api = subject.api;
  const t: CaseContext = {
    api,
    subject,
    defer: (fn) => cleanups.push(fn),
    async startServer(options = {}) {
      const [server, condition] = await (api.startUpServer({
        service: 0,
        address: '127.0.0.1',
        ...options,
        wait: true,
      } as AnyServerOptions) as Promise<StartUpServerResult>);
      if (!server) throw new Error(`the server did not start: ${condition?.message}`);
      cleanups.push(() => api.serverTerminate(server));
      const [, port] = api.getSocketAddress(server.socket);
      const local = server.socket?.local.address ?? '127.0.0.1';
      return { server, port: port as number, host: local };
    },
    async connect(port, host = '127.0.0.1') {
      const transport = clientTransport(subject);
      const client = transport ? new RawClient(await transport(port, host)) : await rawConnect(port, host);
      cleanups.push(() => client.destroy());
      return client;
    },
    async waitFor(condition, what, ms = 5000) {
      const until = Date.now() + ms;
      while (!(await condition())) {
        if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(10);
      }
    },
    sleep,
    spawnFixture(name, args = []) {
      const fixture = spawnFixture(subject, name, args);
      cleanups.push(async () => {
        killGroup(fixture.child);
        await fixture.exited;
      });
      return fixture;
    },
  };
  try {
    await within(c.run(t), c.timeoutMs ?? DEFAULT_TIMEOUT_MS, c.id);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await within(Promise.resolve(cleanup()), CLEANUP_TIMEOUT_MS, `${c.id} cleanup`);
      } catch (error) {
        console.error(`conformance: cleanup of ${c.id} failed:`, error);
      }
    }
  }
}

/** Runs every case (or those `only` keeps) in order; deviations are reported, not run. */
export async function runSuite(
  subject: Subject,
  options: { only?: (c: Case) => boolean; onResult?: (c: Case, outcome: Outcome) => void } = {},
): Promise<Map<string, Outcome>> {
  const results = new Map<string, Outcome>();
  for (const c of cases) {
    if (options.only && !options.only(c)) continue;
    const deviation = deviationFor(subject.api.backend, c);
    let outcome: Outcome;
    if (deviation) outcome = { status: 'deviation', reason: deviation.reason, upstream: deviation.upstream };
    else {
      const started = Date.now();
      try {
        await runCase(c, subject);
        outcome = { status: 'pass', ms: Date.now() - started };
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        outcome = { status: 'fail', ms: Date.now() - started, error: message };
      }
    }
    results.set(c.id, outcome);
    options.onResult?.(c, outcome);
  }
  return results;
}

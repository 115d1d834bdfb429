import { setImmediate } from 'node:timers';
import type { Backend, Connection, Listener, ListenSpec } from './backend.js';
import { builtInListener } from './built-in-listener.js';
import { listenCondition, StartupCondition } from './conditions.js';
import {
  type AnnounceFunction,
  type AnyServerOptions,
  normalizeServerOptions,
  type ServerOptions,
} from './options.js';
import { adoptSession, closeSessionOf, type LightweightProcess } from './process.js';
import { readProxyHeader } from './proxy.js';
import { isLoopback, resolveEndpoints, resolveService } from './resolve.js';
import { currentServer } from './scope.js';
import type { ServerScope } from './server-scope.js';
import { ListeningSocket, SocketHandle } from './sockets.js';
import { handshakeWithin } from './ssl.js';
import { type Prepare, PreparingListener } from './stage.js';
import { SocketStream } from './stream.js';
import { checkKnown, describe } from './validate.js';

export type ServerState = 'starting' | 'listening' | 'terminated' | 'failed';

/**
 * R14: how the server meets failures of its listening socket. Each failure waits a little longer
 * before the next accept (never a busy loop); after `reopenAfter` failures in a row the listening
 * socket is closed and opened again on the same address and port. Exhausted resources (R14a) back
 * off the same way, up to `maxBackoffMs`, but never reopen: closing the socket frees nothing.
 */
export const acceptFailurePolicy = {
  reopenAfter: 5,
  firstBackoffMs: 10,
  maxBackoffMs: 1000,
  reopenAttempts: 5,
};

/**
 * R14a: what an accept failure says, by its `code`. `connection`: one peer that went away while
 * queued; `resources`: the process or system is out of descriptors or memory; `listener`: the
 * listening socket itself.
 */
export type AcceptFailureKind = 'connection' | 'resources' | 'listener';

const CONNECTION_FAILURES = new Set([
  'ECONNABORTED',
  'ECONNRESET',
  'ENOTCONN',
  'EPROTO',
  'EPERM',
  'ETIMEDOUT',
]);
const RESOURCE_FAILURES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

export function acceptFailureKind(error: unknown): AcceptFailureKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'listener';
  if (CONNECTION_FAILURES.has(code)) return 'connection';
  if (RESOURCE_FAILURES.has(code)) return 'resources';
  return 'listener';
}

/** Per-connection failures skipped in a row before the loop yields to the event loop once. */
const SKIPS_BEFORE_YIELD = 64;

/** What `startUpServer` returns: the server, its state and its listening socket. */
export class ServerProcess {
  readonly name: string;
  #state: ServerState = 'starting';
  #socket: ListeningSocket | null = null;
  #condition: Error | null = null;
  #settle!: () => void;
  /** Settles once the server has ended, by `serverTerminate` or by a failure. Never rejects. */
  readonly terminated: Promise<void> = new Promise((resolve) => {
    this.#settle = resolve;
  });

  readonly #backend: Backend;
  readonly #options: ServerOptions;
  #spec: ListenSpec | null = null;
  #opening: Promise<Listener> | null = null;
  #terminateAfterCall = false;
  /** The drain `serverTerminate()` asked for from inside `function`, applied once it returns. */
  #drainAfterCall: number | null = null;
  #wake: (() => void) | null = null;
  readonly #context: ServerScope = {
    requestTerminate: (drain) => this.#requestTerminate(drain),
    adopt: (session) => this.#adopt(session as LightweightProcess),
    sessionEnded: (session) => {
      this.#sessions.delete(session as LightweightProcess);
      this.#checkDrained();
    },
  };

  readonly #sessions = new Set<LightweightProcess>();
  /**
   * The connection whose call of `function` is running (R2: one at a time): the sessions that call
   * starts belong to it, so that one that keeps its stream in a closure rather than in its
   * arguments is closed through it all the same.
   */
  #calling: SocketHandle | null = null;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  /** The drain time is over: sessions still running are closed, and so is any started after. */
  #drainOver = false;
  #settleDrained!: () => void;
  /**
   * R23: settles once the server has ended and the last of its sessions (the processes its
   * `function` started with `processRunFunction`) has ended. Never rejects.
   */
  readonly drained: Promise<void> = new Promise((resolve) => {
    this.#settleDrained = resolve;
  });

  /** @internal use `startUpServer` */
  constructor(backend: Backend, options: ServerOptions) {
    this.name = options.processName;
    this.#backend = backend;
    this.#options = options;
  }

  get state(): ServerState {
    return this.#state;
  }

  /** The listening socket while the server listens, else null. */
  get socket(): ListeningSocket | null {
    return this.#socket;
  }

  /** Why the server failed, when it did. */
  get condition(): Error | null {
    return this.#condition;
  }

  get active(): boolean {
    return this.#state === 'starting' || this.#state === 'listening';
  }

  /** R23: the live sessions: processes that this server's `function` started and that have not ended. */
  get sessions(): ReadonlySet<LightweightProcess> {
    return this.#sessions;
  }

  #adopt(session: LightweightProcess): void {
    adoptSession(session, this.#context, this.#calling);
    this.#sessions.add(session);
    if (this.#drainOver) closeSessionOf(session);
  }

  #checkDrained(): void {
    if (this.active || this.#sessions.size > 0 || !this.#released) return;
    clearTimeout(this.#drainTimer);
    this.#settleDrained();
  }

  /** R23: after `seconds`, closes the streams of the sessions still running. */
  #drain(seconds: number): void {
    this.#drainTimer = setTimeout(() => {
      this.#drainOver = true;
      for (const session of this.#sessions) closeSessionOf(session);
    }, seconds * 1000);
  }

  /** @internal opens the socket and starts the accept loop; false if starting failed. */
  async start(): Promise<boolean> {
    let listener: Listener;
    this.#opening = this.#open();
    try {
      listener = await this.#opening;
    } catch (error) {
      this.#fail(error);
      return false;
    }
    // Terminated while starting: #release closes what #opening gives.
    if (!this.active) return false;
    this.#listening(listener);
    if (!this.active) return false;
    // The accept loop runs as this server once and for all (serverTerminate() with no argument in
    // `function` finds it), rather than entering the server for each call: on Node 20 entering an
    // AsyncLocalStorage per connection costs as much as a third of accepting it.
    void currentServer.run(this.#context, () => this.#serve());
    return true;
  }

  async #open(): Promise<Listener> {
    const o = this.#options;
    const builtIn = o.function === null;
    const port = resolveService(o.service);
    const endpoints = await resolveEndpoints(o.address, o.ipv6, builtIn ? 'loopback' : 'any');
    if (builtIn && !o.allowRemoteListener) {
      const remote = endpoints.find((e) => !isLoopback(e.host));
      if (remote)
        throw new StartupCondition(
          `the built-in listener evaluates what clients send, so it serves only loopback addresses; ${remote.host} is not one (pass allowRemoteListener: true to serve it anyway)`,
          { code: 'EACCES' },
        );
    }
    if (o.proxyProtocol !== null && this.#backend.proxyProtocolUnsupported !== undefined)
      throw new StartupCondition(
        `the ${this.#backend.name} backend cannot read a PROXY protocol header: ${this.#backend.proxyProtocolUnsupported}`,
        { code: 'ENOTSUP' },
      );
    // The header would come before the handshake, and the header's bytes after it (the start of
    // the ClientHello) would have to be handed back to the runtime's TLS: not built yet.
    if (o.proxyProtocol !== null && o.sslCtx !== null)
      throw new StartupCondition(
        'proxyProtocol together with sslCtx is not supported yet: terminate TLS at the load balancer, or pass TLS through without a PROXY header',
        { code: 'ENOTSUP' },
      );
    let first: unknown = null;
    // R8 'any': the first address that binds wins.
    for (const endpoint of endpoints) {
      const spec: ListenSpec = {
        host: endpoint.host,
        port,
        family: endpoint.family,
        ipv6Only: endpoint.family === 6 && o.ipv6 === true,
        backlog: o.backlog,
        reusePort: o.reuseport,
        tls: o.sslCtx?.spec,
      };
      try {
        const listener = this.#staged(await this.#backend.listen(spec));
        this.#spec = { ...spec, port: listener.local.port };
        return listener;
      } catch (error) {
        first ??= listenCondition(endpoint.host, port, error);
      }
    }
    throw first;
  }

  /**
   * R21, R22: with the PROXY protocol or TLS, connections read their header and finish their
   * handshake (in that order) before the accept loop sees them, each within its own timeout.
   */
  #staged(listener: Listener): Listener {
    const o = this.#options;
    const steps: Prepare[] = [];
    if (o.proxyProtocol !== null)
      steps.push(readProxyHeader(o.proxyProtocol, o.trustedProxies, o.proxyHeaderTimeout * 1000));
    const ctx = o.sslCtx;
    if (ctx !== null) {
      steps.push(async (connection) => {
        try {
          await handshakeWithin(
            connection.handshake?.() ?? Promise.resolve(),
            ctx.handshakeTimeout,
            'of a client',
          );
          return connection;
        } catch {
          // A failed or silent handshake costs that connection only.
          connection.destroy();
          return null;
        }
      });
    }
    if (steps.length === 0) return listener;
    return new PreparingListener(listener, async (connection) => {
      let current: Connection | null = connection;
      for (const step of steps) {
        current = await step(current);
        if (current === null) return null;
      }
      return current;
    });
  }

  #listening(listener: Listener): void {
    this.#socket = new ListeningSocket(listener);
    this.#state = 'listening';
    const announce = this.#options.announce;
    try {
      if (typeof announce === 'function') {
        currentServer.run(this.#context, () => (announce as AnnounceFunction)(this.#socket, null));
      } else if (announce) {
        const { address, port } = listener.local;
        const where = address.includes(':') ? `[${address}]` : address;
        announce.write(`${this.name} listening on ${where} port ${port}\n`);
      }
    } catch (error) {
      // A failing announce is a failure of the server like any other (R13), never a rejection of wait (R12).
      this.#fail(error);
      return;
    }
    if (this.#terminateAfterCall) this.terminate(this.#drainAfterCall);
  }

  /** R2: one connection at a time; the next is accepted only once `function` has returned or settled. */
  async #serve(): Promise<void> {
    let failures = 0;
    let exhausted = 0;
    let skipped = 0;
    while (this.#state === 'listening') {
      const socket = this.#socket as ListeningSocket;
      let connection: Connection | null;
      try {
        connection = await socket.accept();
      } catch (error) {
        if (this.#state !== 'listening') return;
        const { firstBackoffMs, maxBackoffMs, reopenAfter } = acceptFailurePolicy;
        switch (acceptFailureKind(error)) {
          case 'connection':
            // A port scanner's resets must cost nothing, but a backend that rejects at once for ever
            // must not starve the event loop either.
            if (++skipped % SKIPS_BEFORE_YIELD === 0) await new Promise((resolve) => setImmediate(resolve));
            break;
          case 'resources':
            exhausted += 1;
            await this.#sleep(Math.min(firstBackoffMs * 2 ** (exhausted - 1), maxBackoffMs));
            break;
          case 'listener':
            failures += 1;
            if (failures >= reopenAfter) {
              failures = 0;
              if (!(await this.#reopen(error))) return;
            } else await this.#sleep(Math.min(firstBackoffMs * 2 ** (failures - 1), maxBackoffMs));
        }
        continue;
      }
      if (connection === null) return;
      failures = 0;
      exhausted = 0;
      skipped = 0;
      if (this.#state !== 'listening') {
        connection.destroy();
        return;
      }
      if (!(await this.#call(connection))) return;
      if (this.#terminateAfterCall) this.terminate(this.#drainAfterCall);
    }
  }

  async #call(connection: Connection): Promise<boolean> {
    const o = this.#options;
    try {
      connection.setNoDelay(o.nodelay);
      if (o.keepalive) connection.setKeepAlive(true);
    } catch {
      // The peer may already have gone; the handler will see that on its first read.
    }
    const fn = (o.function ?? builtInListener) as (handle: unknown) => unknown;
    const socket = new SocketHandle(connection);
    const handle = o.createStream ? new SocketStream({ socket, ...o.createStream }) : socket;
    this.#calling = socket;
    try {
      await fn(handle);
      return true;
    } catch (error) {
      // The call failed, so nothing else holds its connection: close it rather than leave the peer hanging.
      socket.destroy();
      this.#fail(error);
      return false;
    } finally {
      this.#calling = null;
    }
  }

  /** R14: closes the listening socket and opens it again on the same address and port. */
  async #reopen(cause: unknown): Promise<boolean> {
    await this.#socket?.close();
    const spec = this.#spec as ListenSpec;
    let last: unknown = cause;
    for (let attempt = 0; attempt < acceptFailurePolicy.reopenAttempts; attempt++) {
      if (this.#state !== 'listening') return false;
      try {
        const listener = this.#staged(await this.#backend.listen(spec));
        if (this.#state !== 'listening') {
          await listener.close();
          return false;
        }
        this.#listening(listener);
        return this.active;
      } catch (error) {
        last = error;
        await this.#sleep(
          Math.min(acceptFailurePolicy.firstBackoffMs * 2 ** attempt, acceptFailurePolicy.maxBackoffMs),
        );
      }
    }
    this.#fail(listenCondition(spec.host, spec.port, last));
    return false;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = () => done();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = wake;
    });
  }

  #requestTerminate(drain: number | null): boolean {
    if (!this.active) return false;
    this.#terminateAfterCall = true;
    this.#drainAfterCall = drain;
    return true;
  }

  /** R13: the server ends; with `error` true the condition then goes to the host as an uncaught exception. */
  #fail(error: unknown): void {
    if (!this.active) return;
    const condition = error instanceof Error ? error : new Error(String(error));
    this.#state = 'failed';
    this.#condition = condition;
    this.#release();
    const announce = this.#options.announce;
    if (typeof announce === 'function' && !this.#options.error)
      (announce as AnnounceFunction)(null, condition);
    if (this.#options.error)
      setTimeout(() => {
        throw condition;
      }, 0);
  }

  #release(): void {
    const socket = this.#socket;
    this.#socket = null;
    this.#wake?.();
    this.#wake = null;
    // While starting there is no socket yet, but the bind in flight must be undone before `terminated` settles.
    const closing = socket
      ? socket.close()
      : (this.#opening?.then(
          (listener) => listener.close(),
          () => {},
        ) ?? Promise.resolve());
    void closing.finally(() => {
      this.#released = true;
      this.#settle();
      this.#checkDrained();
    });
  }

  #released = false;

  /** @internal R15 and R23; use `serverTerminate`. */
  terminate(drain: number | null = null): boolean {
    if (!this.active) return false;
    this.#state = 'terminated';
    if (drain !== null) this.#drain(drain);
    this.#release();
    const announce = this.#options.announce;
    if (typeof announce === 'function') (announce as AnnounceFunction)(null, null);
    return true;
  }
}

export type StartUpServerResult = [ServerProcess, null] | [null, Error];

/** `comm:start-up-server` on a given backend. */
export function startUpServer(
  backend: Backend,
  options?: AnyServerOptions,
): ServerProcess | Promise<StartUpServerResult> {
  const normalized = normalizeServerOptions(options);
  const server = new ServerProcess(backend, normalized);
  const started = server.start();
  if (!normalized.wait) return server;
  return started.then((ok): StartUpServerResult => (ok ? [server, null] : [null, server.condition as Error]));
}

export interface ServerTerminateOptions {
  /**
   * R23: seconds the server's sessions get to end by themselves once the port is freed; then
   * their streams are closed. Without it, sessions are left alone (R15).
   */
  drain?: number | null;
}

/**
 * `comm:server-terminate`: ends the server and returns true if it was active. With no argument,
 * inside `function` or `announce`, ends the server running them once `function` returns. With
 * `{ drain: seconds }`, then gives its sessions that long before closing them (`process.drained`).
 */
export function serverTerminate(process?: ServerProcess | null, options?: ServerTerminateOptions): boolean {
  if (process !== undefined && process !== null && !(process instanceof ServerProcess))
    throw new TypeError(`serverTerminate: expected a ServerProcess or null, not ${describe(process)}`);
  const drain = drainSeconds(options);
  if (process === undefined || process === null)
    return currentServer.getStore()?.requestTerminate(drain) ?? false;
  return process.terminate(drain);
}

function drainSeconds(options: ServerTerminateOptions | undefined): number | null {
  if (options === undefined) return null;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new TypeError(`serverTerminate: options must be an object, not ${describe(options)}`);
  checkKnown('serverTerminate', options, new Set(['drain']));
  const drain = options.drain ?? null;
  if (drain !== null && !(typeof drain === 'number' && drain >= 0 && Number.isFinite(drain)))
    throw new TypeError(
      `serverTerminate: option "drain" must be a number of seconds (0 or more) or null, not ${describe(drain)}`,
    );
  return drain;
}

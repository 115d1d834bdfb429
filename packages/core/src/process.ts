import { describe } from './describe.js';
import { currentServer, outsideServers } from './scope.js';
import type { ServerScope } from './server-scope.js';

export type ProcessState = 'running' | 'finished' | 'failed';

/**
 * What the library closes when a session that was handed it ends badly: its function failed, or
 * its server's drain time is over (R23). `SocketStream` and `SocketHandle` have it.
 */
export const closeSession: unique symbol = Symbol('comm.closeSession');

interface Closable {
  [closeSession](): void;
}

function isClosable(value: unknown): value is Closable {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Partial<Closable>)[closeSession] === 'function'
  );
}

/** Set by LightweightProcess's static block: records how a process ended. */
let ended: (process: LightweightProcess, state: ProcessState, error: unknown) => void;

/**
 * Set by LightweightProcess's static block: makes `server` the owner of a process, with the
 * connection whose call started it (closed with it: R23). Fields rather than a promise reaction
 * and a map entry per session, because an idle server holds thousands of them.
 */
/** Set by LightweightProcess's static block: tells the process's server, if any, that it ended. */
let left: (process: LightweightProcess) => void;

export let adoptSession: (
  process: LightweightProcess,
  server: ServerScope,
  connection: Closable | null,
) => void;

/**
 * Runs a process's function after the caller's task (a process is started, not called). One
 * async frame per process, and no closures: an idle session costs little.
 */
async function run(process: LightweightProcess, fn: (...args: never[]) => unknown, args: readonly unknown[]) {
  await null;
  try {
    const value = await (fn as (...a: unknown[]) => unknown)(...args);
    ended(process, 'finished', null);
    return value;
  } catch (error) {
    ended(process, 'failed', error);
    // Nothing else holds the session's stream now: close it rather than leave the peer hanging.
    closeSessionOf(process);
    console.error(`comm: process "${process.name}" failed:`, error);
    return undefined;
  } finally {
    left(process);
  }
}

/** Closes the streams and socket handles a process was started with. */
export let closeSessionOf: (process: LightweightProcess) => void;

/** A light-weight process: a named asynchronous task whose failure is reported, never propagated. */
export class LightweightProcess {
  readonly name: string;
  #state: ProcessState = 'running';
  #error: unknown = null;
  readonly #args: readonly unknown[];
  #server: ServerScope | null = null;
  #connection: Closable | null = null;
  /** Settles when the process ends: with `fn`'s value, or `undefined` if it failed. Never rejects. */
  readonly done: Promise<unknown>;

  /** @internal use `processRunFunction` */
  constructor(name: string, fn: (...args: never[]) => unknown, args: readonly unknown[]) {
    this.name = name;
    this.#args = args;
    this.done = outsideServers.runInAsyncScope(run, null, this, fn, args);
  }

  static {
    ended = (process, state, error) => {
      process.#state = state;
      process.#error = error;
    };
    left = (process) => process.#server?.sessionEnded(process);
    adoptSession = (process, server, connection) => {
      process.#server = server;
      process.#connection = connection;
    };
    closeSessionOf = (process) => {
      for (const arg of process.#args) if (isClosable(arg)) arg[closeSession]();
      process.#connection?.[closeSession]();
    };
  }

  get state(): ProcessState {
    return this.#state;
  }

  get error(): unknown {
    return this.#error;
  }
}

/**
 * `mp:process-run-function`: runs `fn(...args)` as a named light-weight process. Started from a
 * server's `function`, it is one of that server's sessions (`ServerProcess.sessions`, R23); when
 * `fn` fails, the streams and socket handles among `args` are closed.
 */
export function processRunFunction<A extends unknown[]>(
  name: string,
  fn: (...args: A) => unknown,
  ...args: A
): LightweightProcess {
  if (typeof name !== 'string')
    throw new TypeError(`processRunFunction: name must be a string, not ${describe(name)}`);
  if (typeof fn !== 'function')
    throw new TypeError(`processRunFunction: fn must be a function, not ${describe(fn)}`);
  const process = new LightweightProcess(name, fn as (...args: never[]) => unknown, args);
  currentServer.getStore()?.adopt(process);
  return process;
}

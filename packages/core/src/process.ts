import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { describe } from './options.js';

/**
 * The server whose `function` or `announce` is running, so that `serverTerminate()` with no
 * argument knows which server to end, across the awaits of an async handler too.
 */
export const currentServer = new AsyncLocalStorage<{ requestTerminate(): boolean } | undefined>();

export type ProcessState = 'running' | 'finished' | 'failed';

/** Set by LightweightProcess's static block: records how a process ended. */
let ended: (process: LightweightProcess, state: ProcessState, error: unknown) => void;

/**
 * Made when this module loads, outside every server: processes start in its scope, so that
 * serverTerminate() inside one ends nothing. (Entering `currentServer.run(undefined, ...)` per
 * process would do the same, but on Node 20 it writes the store onto the caller's promise, and
 * costs as much as a fifth of accepting a connection.)
 */
const outsideServers = new AsyncResource('comm.LightweightProcess');

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
    console.error(`comm: process "${process.name}" failed:`, error);
    return undefined;
  }
}

/** A light-weight process: a named asynchronous task whose failure is reported, never propagated. */
export class LightweightProcess {
  readonly name: string;
  #state: ProcessState = 'running';
  #error: unknown = null;
  /** Settles when the process ends: with `fn`'s value, or `undefined` if it failed. Never rejects. */
  readonly done: Promise<unknown>;

  /** @internal use `processRunFunction` */
  constructor(name: string, fn: (...args: never[]) => unknown, args: readonly unknown[]) {
    this.name = name;
    this.done = outsideServers.runInAsyncScope(run, null, this, fn, args);
  }

  static {
    ended = (process, state, error) => {
      process.#state = state;
      process.#error = error;
    };
  }

  get state(): ProcessState {
    return this.#state;
  }

  get error(): unknown {
    return this.#error;
  }
}

/** `mp:process-run-function`: runs `fn(...args)` as a named light-weight process. */
export function processRunFunction<A extends unknown[]>(
  name: string,
  fn: (...args: A) => unknown,
  ...args: A
): LightweightProcess {
  if (typeof name !== 'string')
    throw new TypeError(`processRunFunction: name must be a string, not ${describe(name)}`);
  if (typeof fn !== 'function')
    throw new TypeError(`processRunFunction: fn must be a function, not ${describe(fn)}`);
  return new LightweightProcess(name, fn as (...args: never[]) => unknown, args);
}

import { AsyncLocalStorage } from 'node:async_hooks';
import { describe } from './options.js';

/**
 * The server whose `function` or `announce` is running, so that `serverTerminate()` with no
 * argument knows which server to end, across the awaits of an async handler too.
 */
export const currentServer = new AsyncLocalStorage<{ requestTerminate(): boolean }>();

export type ProcessState = 'running' | 'finished' | 'failed';

/** A light-weight process: a named asynchronous task whose failure is reported, never propagated. */
export class LightweightProcess {
  readonly name: string;
  #state: ProcessState = 'running';
  #error: unknown = null;
  /** Settles when the process ends: with `fn`'s value, or `undefined` if it failed. Never rejects. */
  readonly done: Promise<unknown>;

  constructor(name: string, run: () => unknown) {
    this.name = name;
    this.done = Promise.resolve()
      // A process is not part of the server that started it: serverTerminate() inside it ends nothing.
      .then(() => currentServer.exit(run))
      .then(
        (value) => {
          this.#state = 'finished';
          return value;
        },
        (error: unknown) => {
          this.#state = 'failed';
          this.#error = error;
          console.error(`comm: process "${name}" failed:`, error);
          return undefined;
        },
      );
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
  return new LightweightProcess(name, () => fn(...args));
}

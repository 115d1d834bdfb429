import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';

/**
 * What a server's `function` and `announce` run inside: `serverTerminate()` with no argument
 * finds the server by it, and `processRunFunction` hands it the sessions it starts (R23).
 * Kept out of every public module, so that no declaration a user compiles needs `node:` types.
 */
export interface ServerScope {
  requestTerminate(drain: number | null): boolean;
  /** A process started in this scope: the server keeps it as a session until `sessionEnded`. */
  adopt(session: object): void;
  sessionEnded(session: object): void;
}

/** The server whose `function` or `announce` is running, across the awaits of an async handler too. */
export const currentServer = new AsyncLocalStorage<ServerScope | undefined>();

/**
 * Made when this module loads, outside every server: processes start in its scope, so that
 * serverTerminate() inside one ends nothing. (Entering `currentServer.run(undefined, ...)` per
 * process would do the same, but on Node 20 it writes the store onto the caller's promise, and
 * costs as much as a fifth of accepting a connection.)
 */
export const outsideServers = new AsyncResource('comm.LightweightProcess');

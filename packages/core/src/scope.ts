import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import type { ServerScope } from './server-scope.js';

/** The server whose `function` or `announce` is running, across the awaits of an async handler too. */
export const currentServer = new AsyncLocalStorage<ServerScope | undefined>();

/**
 * Made when this module loads, outside every server: processes start in its scope, so that
 * serverTerminate() inside one ends nothing. (Entering `currentServer.run(undefined, ...)` per
 * process would do the same, but on Node 20 it writes the store onto the caller's promise, and
 * costs as much as a fifth of accepting a connection.)
 */
export const outsideServers = new AsyncResource('comm.LightweightProcess');

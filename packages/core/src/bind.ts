import type { Ipv6Address } from './address.js';
import type { Backend } from './backend.js';
import { type OpenTcpStreamOptions, openTcpStream } from './client.js';
import type { AnyServerOptions, StartUpServerOptions, StartUpStreamServerOptions } from './options.js';
import {
  type ServerProcess,
  type ServerTerminateOptions,
  type StartUpServerResult,
  serverTerminate,
  startUpServer,
} from './server.js';
import type { SocketStream } from './stream.js';

/** The part of the public API that depends on the backend, bound to one. */
export interface BoundApi {
  readonly backend: Backend;
  startUpServer(options: StartUpStreamServerOptions & { wait: true }): Promise<StartUpServerResult>;
  startUpServer(options: StartUpServerOptions & { wait: true }): Promise<StartUpServerResult>;
  startUpServer(options: StartUpStreamServerOptions & { wait?: false }): ServerProcess;
  startUpServer(options?: StartUpServerOptions & { wait?: false }): ServerProcess;
  startUpServer(options?: AnyServerOptions): ServerProcess | Promise<StartUpServerResult>;
  serverTerminate(process?: ServerProcess | null, options?: ServerTerminateOptions): boolean;
  /** With `errorp: true` a failure rejects with a `ConnectionError`, so the stream is never null. */
  openTcpStream(
    hostspec: string | number | Ipv6Address,
    service: number | string,
    options: OpenTcpStreamOptions & { errorp: true },
  ): Promise<SocketStream>;
  openTcpStream(
    hostspec: string | number | Ipv6Address,
    service: number | string,
    options?: OpenTcpStreamOptions,
  ): Promise<SocketStream | null>;
}

/** Binds the contract to a backend: what every backend package exports. */
export function bindBackend(backend: Backend): BoundApi {
  return {
    backend,
    startUpServer: ((options?: AnyServerOptions) =>
      startUpServer(backend, options)) as BoundApi['startUpServer'],
    serverTerminate,
    openTcpStream: ((hostspec, service, options) =>
      openTcpStream(backend, hostspec, service, options)) as BoundApi['openTcpStream'],
  };
}

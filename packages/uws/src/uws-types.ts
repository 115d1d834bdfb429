/**
 * The part of the uWebSockets.js module this backend uses, typed here so that the package does not
 * depend on one build of it: the official one (installed from GitHub as `uWebSockets.js`) and
 * `@trufflesuite/uws-js-unofficial` both fit.
 */

/** An opaque native pointer: a listening socket. */
export type UwsListenSocket = object;
export type UwsSocketContext = object;

export interface UwsWebSocket<UserData> {
  send(message: Uint8Array | ArrayBuffer | string, isBinary?: boolean, compress?: boolean): number;
  getBufferedAmount(): number;
  end(code?: number, shortMessage?: string): void;
  close(): void;
  ping(message?: Uint8Array | ArrayBuffer | string): number;
  cork(cb: () => void): unknown;
  getRemoteAddress(): ArrayBuffer;
  getUserData(): UserData;
  /** Newer builds only. */
  getRemotePort?(): number;
}

export interface UwsHttpResponse {
  writeStatus(status: string): UwsHttpResponse;
  writeHeader(key: string, value: string): UwsHttpResponse;
  end(body?: string | Uint8Array | ArrayBuffer, closeConnection?: boolean): UwsHttpResponse;
  onAborted(handler: () => void): UwsHttpResponse;
  cork(cb: () => void): UwsHttpResponse;
  getRemoteAddress(): ArrayBuffer;
  /** Newer builds only. */
  getRemotePort?(): number;
  upgrade<UserData>(
    userData: UserData,
    secWebSocketKey: string,
    secWebSocketProtocol: string,
    secWebSocketExtensions: string,
    context: UwsSocketContext,
  ): void;
}

export interface UwsHttpRequest {
  getHeader(lowerCaseKey: string): string;
  getUrl(): string;
  getMethod(): string;
  getQuery(): string;
  /** Lets the router go on to the next route that matches (a WebSocket upgrade past a page's route). */
  setYield(yieldToNext: boolean): UwsHttpRequest;
}

export interface UwsWebSocketBehavior<UserData> {
  maxPayloadLength?: number;
  idleTimeout?: number;
  maxBackpressure?: number;
  closeOnBackpressureLimit?: number | boolean;
  sendPingsAutomatically?: boolean;
  compression?: number;
  upgrade?: (res: UwsHttpResponse, req: UwsHttpRequest, context: UwsSocketContext) => void;
  open?: (ws: UwsWebSocket<UserData>) => void;
  message?: (ws: UwsWebSocket<UserData>, message: ArrayBuffer, isBinary: boolean) => void;
  drain?: (ws: UwsWebSocket<UserData>) => void;
  close?: (ws: UwsWebSocket<UserData>, code: number, message: ArrayBuffer) => void;
}

export interface UwsApp {
  ws<UserData>(pattern: string, behavior: UwsWebSocketBehavior<UserData>): UwsApp;
  get(pattern: string, handler: (res: UwsHttpResponse, req: UwsHttpRequest) => void): UwsApp;
  any(pattern: string, handler: (res: UwsHttpResponse, req: UwsHttpRequest) => void): UwsApp;
  listen(
    host: string,
    port: number,
    options: number,
    cb: (listenSocket: UwsListenSocket | false) => void,
  ): UwsApp;
  /** SSLApp: a certificate for one SNI name, with a router of its own (`domain`). */
  addServerName?(hostname: string, options: UwsAppOptions): UwsApp;
  /** SSLApp: routes registered after this go to the SNI name's router. */
  domain?(serverName: string): UwsApp;
  /** SSLApp: called, synchronously inside the handshake, with an SNI name no `addServerName` gave. */
  missingServerName?(cb: (hostname: string) => void): UwsApp;
}

/** What `SSLApp` takes: uWS reads the files itself. */
export interface UwsAppOptions {
  cert_file_name?: string;
  key_file_name?: string;
  passphrase?: string;
  ca_file_name?: string;
  dh_params_file_name?: string;
  ssl_ciphers?: string;
  ssl_prefer_low_memory_usage?: boolean;
}

/** What `require('uWebSockets.js')` gives. */
export interface UwsModule {
  App(options?: object): UwsApp;
  /** A TLS app (wss); throws when uWS cannot load the files. Absent from the JavaScript fallback. */
  SSLApp?(options: UwsAppOptions): UwsApp;
  us_listen_socket_close(listenSocket: UwsListenSocket): void;
  us_socket_local_port(socket: UwsListenSocket): number;
  readonly LIBUS_LISTEN_EXCLUSIVE_PORT?: number;
}

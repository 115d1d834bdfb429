/**
 * The helpers of the TLS cases (R22): contexts made from the test certificates (../certificates.ts,
 * made with the system's `openssl`), servers and clients through the backend module's exports, and
 * the independent peer, Python's `ssl` module (fixtures/tls-peer.py), which speaks comm-stream over
 * a WebSocket to a backend whose bytes travel in WebSocket messages (uWS).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import process from 'node:process';
import type {
  attachSsl,
  Connection,
  ConnectionError,
  createSslClientContext,
  createSslServerContext,
  OpenTcpStreamOptions,
  SocketStream,
  SslClientContext,
  SslClientContextOptions,
  SslServerContext,
  SslServerContextOptions,
} from '@comm/core/backend';
import type { CaseContext } from '../../suite.js';
import { clientTransport, fixturePath, within } from '../../suite.js';
import { type CertificatePair, certificates } from '../certificates.js';
import { serve, stream } from '../helpers.js';

/** What R22 adds to a backend module's exports (every backend re-exports @comm/core). */
export interface TlsApi {
  readonly createSslServerContext: typeof createSslServerContext;
  readonly createSslClientContext: typeof createSslClientContext;
  readonly attachSsl: typeof attachSsl;
  readonly ConnectionError: typeof ConnectionError;
}

/** The backend module's R22 exports; fails the case, naming what is missing, if one is not there. */
export function tlsApi(t: CaseContext): TlsApi {
  const api = t.api as unknown as Record<string, unknown>;
  for (const name of ['createSslServerContext', 'createSslClientContext', 'attachSsl', 'ConnectionError'])
    if (typeof api[name] !== 'function')
      throw new Error(`the ${t.api.backend.name} module exports no ${name} (is its dist built with R22?)`);
  return api as unknown as TlsApi;
}

/** A server context with `pair` (the CA-signed localhost certificate by default). */
export function serverContext(
  t: CaseContext,
  pair: CertificatePair = certificates().server,
  more: Partial<SslServerContextOptions> = {},
): SslServerContext {
  return tlsApi(t).createSslServerContext({ certFile: pair.certFile, keyFile: pair.keyFile, ...more });
}

/** A client context that trusts the test CA (and nothing else). */
export function trustingContext(t: CaseContext, more: SslClientContextOptions = {}): SslClientContext {
  return tlsApi(t).createSslClientContext({ caFile: certificates().ca.certFile, ...more });
}

/** A TLS server whose connections run `body`; `calls()` counts the connections that reached `function`. */
export async function tlsServer(
  t: CaseContext,
  ctx: SslServerContext,
  body: (handle: Connection) => Promise<unknown>,
): Promise<{ port: number; calls: () => number; result: (n?: number, ms?: number) => Promise<unknown> }> {
  let calls = 0;
  const served = await serve(
    t,
    async (handle) => {
      calls++;
      return body(handle);
    },
    { sslCtx: ctx },
  );
  return { ...served, calls: () => calls };
}

/** A `function` that says `hello` and closes. */
export async function hello(t: CaseContext, handle: Connection): Promise<unknown> {
  const s = stream(t, handle);
  await s.writeLine('hello');
  await s.close();
  return handle.tls ?? null;
}

/**
 * A `function` that answers `echo <line>` to each line until `bye`, answers `bye` and closes;
 * resolves to the lines and what `handle.tls` said.
 */
export async function echo(t: CaseContext, handle: Connection): Promise<{ lines: string[]; tls: unknown }> {
  const s = stream(t, handle, { readTimeout: 10 });
  const lines: string[] = [];
  for (let line = await s.readLine(); line !== null && line !== 'bye'; line = await s.readLine()) {
    lines.push(line);
    await s.writeLine(`echo ${line}`);
    s.forceOutput();
  }
  await s.writeLine('bye');
  await s.close();
  return { lines, tls: handle.tls ?? null };
}

/** @comm's client (the backend's `openTcpStream`) with TLS to 127.0.0.1; closed after the case. */
export async function openTls(
  t: CaseContext,
  port: number,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream | null> {
  const connecting = t.api.openTcpStream('127.0.0.1', port, {
    sslCtx: trustingContext(t),
    tlsextHostName: 'localhost',
    readTimeout: 10,
    ...options,
  });
  const s = await within(connecting, 15_000, `openTcpStream with TLS to port ${port}`);
  if (s) t.defer(() => s.close({ abort: true }));
  return s;
}

/** `openTls` that must succeed. */
export async function openTlsOk(
  t: CaseContext,
  port: number,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream> {
  const s = await openTls(t, port, { ...options, errorp: true });
  assert.ok(s, 'openTcpStream with errorp gave null');
  return s;
}

/** The condition `promise` rejects with; fails if it resolves. */
export async function rejection(promise: Promise<unknown>, what: string): Promise<ConnectionError> {
  let value: unknown;
  try {
    value = await within(promise, 15_000, what);
  } catch (error) {
    return error as ConnectionError;
  }
  if (value && typeof (value as SocketStream).close === 'function')
    void (value as SocketStream).close({ abort: true });
  return assert.fail(`${what} succeeded: it should have been refused`);
}

/** `error` is a ConnectionError whose `tls` is true. */
export function assertTlsCondition(t: CaseContext, error: unknown, what: string): void {
  const { ConnectionError } = tlsApi(t);
  assert.ok(
    error instanceof ConnectionError,
    `${what}: expected a ConnectionError, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
  );
  assert.equal(error.tls, true, `${what}: the condition's tls should be true (${error.message})`);
}

/** The TLS version a `tls` info or Python names, like TLSv1.3. */
export const PROTOCOL = /^TLSv1\.[23]$/;

/**
 * The handshake's info (`handle.tls`, `stream.socket.tls`): an object whose protocol is TLSv1.2 or
 * TLSv1.3, or null where the runtime cannot tell (the seam's `TlsInfo`: Deno and uWS do not say).
 */
export function assertTlsInfo(
  info: unknown,
  what: string,
): { servername: string | null; protocol: string | null } {
  assert.ok(
    info && typeof info === 'object',
    `${what}: tls is ${JSON.stringify(info)}, not the handshake's info`,
  );
  const { servername, protocol } = info as { servername: string | null; protocol: string | null };
  if (protocol !== null)
    assert.match(String(protocol), PROTOCOL, `${what}: tls.protocol is ${JSON.stringify(protocol)}`);
  assert.ok(
    servername === null || typeof servername === 'string',
    `${what}: tls.servername is ${JSON.stringify(servername)}`,
  );
  return { servername, protocol };
}

/** A line from @comm's client, within 5 s. */
export function line(s: SocketStream): Promise<string | null> {
  return within(s.readLine(), 5000, 'a line from the server');
}

/** Whether the server's byte stream travels in WebSocket messages (uWS): its suite transport says so. */
export function wsSubprotocol(t: CaseContext): string | null {
  if (clientTransport(t.subject) === null) return null;
  const protocol = t.api.protocol as { SUBPROTOCOL?: unknown } | undefined;
  return typeof protocol?.SUBPROTOCOL === 'string' ? protocol.SUBPROTOCOL : 'comm-stream';
}

/** Python's `ssl` module as an independent peer (fixtures/tls-peer.py), its process group killed after the case. */
export interface Peer {
  readonly child: ChildProcess;
  line(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** A line on its stdin. */
  tell(text: string): void;
  /** The JSON of its RESULT line. */
  result(ms?: number): Promise<Record<string, unknown>>;
}

/** Runs fixtures/tls-peer.py in `mode` with `args` (see `Peer`). */
export function pythonPeer(t: CaseContext, mode: string, args: readonly string[]): Peer {
  const child = spawn('python3', [fixturePath('tls-peer.py'), mode, ...args], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let done = false;
  let spawnError: Error | null = null;
  const wake: Array<() => void> = [];
  const notify = () => {
    for (const w of wake.splice(0)) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  child.stdin?.on('error', () => {});
  child.on('error', (error) => {
    spawnError = error;
    done = true;
    notify();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      // Its last output may still be in the pipe.
      setTimeout(() => {
        done = true;
        notify();
        resolve();
      }, 50);
    });
  });
  t.defer(async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
    if (!spawnError) await exited;
  });
  const peer: Peer = {
    child,
    line(pattern, ms = 15_000) {
      const find = async (): Promise<RegExpMatchArray> => {
        for (;;) {
          for (const l of out.split('\n')) {
            const match = l.match(pattern);
            if (match) return match;
          }
          if (done) {
            const why = spawnError ? `python3 did not start: ${spawnError.message}` : `stderr: ${err.trim()}`;
            throw new Error(`the Python peer (${mode}) ended before printing ${pattern}; ${why}`);
          }
          await new Promise<void>((resolve) => wake.push(resolve));
        }
      };
      return within(find(), ms, `the Python peer (${mode}) to print ${pattern}`);
    },
    tell(text) {
      child.stdin?.write(`${text}\n`);
    },
    async result(ms) {
      const [, json] = await peer.line(/^RESULT (.*)$/, ms);
      return JSON.parse(json as string) as Record<string, unknown>;
    },
  };
  return peer;
}

/** The Python peer's arguments to reach a server of this backend on `port`, trusting the test CA. */
export function peerArgs(t: CaseContext, port: number, more: readonly string[] = []): string[] {
  const ws = wsSubprotocol(t);
  return [
    '--port',
    String(port),
    '--ca',
    certificates().ca.certFile,
    '--servername',
    'localhost',
    ...(ws ? ['--ws', ws] : []),
    ...more,
  ];
}

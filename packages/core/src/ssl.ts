import { readFileSync } from 'node:fs';
import type { TlsClientSpec, TlsServerSpec } from './backend.js';
import { checkKnown, describe } from './validate.js';

/** Seconds a TLS handshake may take, unless the context or the call says otherwise. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10;

/**
 * A server's TLS context (`comm:create-ssl-server-context`): its certificate and key, read once
 * from their files, for every connection of every server it is given to.
 */
export class SslServerContext {
  readonly side = 'server';
  /** @internal the PEM text the backends get. */
  readonly spec: TlsServerSpec;
  readonly handshakeTimeout: number;
  /** @internal use `createSslServerContext` */
  constructor(spec: TlsServerSpec, handshakeTimeout: number) {
    this.spec = spec;
    this.handshakeTimeout = handshakeTimeout;
  }
}

/** A client's TLS context (`comm:create-ssl-client-context`): whom it trusts, and whether it verifies. */
export class SslClientContext {
  readonly side = 'client';
  /** @internal */
  readonly spec: Omit<TlsClientSpec, 'servername'>;
  /** @internal use `createSslClientContext` */
  constructor(spec: Omit<TlsClientSpec, 'servername'>) {
    this.spec = spec;
  }
}

export interface SslServerContextOptions {
  /** PEM file of the certificate (its chain after it). */
  certFile: string;
  /** PEM file of the private key. */
  keyFile: string;
  /** The key's passphrase, if it is encrypted. */
  password?: string;
  /** PEM file of the authorities whose client certificates are accepted (with `requestCert`). */
  caFile?: string;
  /** Ask every client for a certificate signed by `caFile`, and refuse those without. */
  requestCert?: boolean;
  /** Seconds a client has to finish its handshake (10). */
  handshakeTimeout?: number;
}

export interface SslClientContextOptions {
  /** PEM file of the authorities to trust instead of the system's. */
  caFile?: string;
  /** false turns certificate and host name verification off. true by default. */
  verify?: boolean;
  /** A client certificate and its key, for servers that ask for one. */
  certFile?: string;
  keyFile?: string;
}

function pemFile(where: string, option: string, file: unknown, kind: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  if (typeof file !== 'string' || file === '')
    throw new TypeError(`${where}: option "${option}" must be a file name, not ${describe(file)}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new TypeError(`${where}: cannot read ${option} "${file}": ${code ?? (error as Error).message}`);
  }
  // `-----BEGIN CERTIFICATE-----`, `-----BEGIN PRIVATE KEY-----`, `-----BEGIN RSA PRIVATE KEY-----`, `-----BEGIN ENCRYPTED PRIVATE KEY-----`.
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text))
    throw new TypeError(`${where}: ${option} "${file}" holds no PEM ${kind.toLowerCase()}`);
  return text;
}

function checkSeconds(where: string, option: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw new TypeError(
      `${where}: option "${option}" must be a positive number of seconds, not ${describe(value)}`,
    );
  return value;
}

const serverKnown = new Set(['certFile', 'keyFile', 'password', 'caFile', 'requestCert', 'handshakeTimeout']);
const clientKnown = new Set(['caFile', 'verify', 'certFile', 'keyFile']);

/** `comm:create-ssl-server-context`: reads the files now, so that a wrong path fails here and names the file. */
export function createSslServerContext(options: SslServerContextOptions): SslServerContext {
  const where = 'createSslServerContext';
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${where}: options must be an object, not ${describe(options)}`);
  checkKnown(where, options, serverKnown);
  const cert = pemFile(where, 'certFile', options.certFile, 'CERTIFICATE');
  const key = pemFile(where, 'keyFile', options.keyFile, 'PRIVATE KEY');
  if (options.password !== undefined && typeof options.password !== 'string')
    throw new TypeError(`${where}: option "password" must be a string, not ${describe(options.password)}`);
  const ca =
    options.caFile === undefined ? undefined : pemFile(where, 'caFile', options.caFile, 'CERTIFICATE');
  if (options.requestCert !== undefined && typeof options.requestCert !== 'boolean')
    throw new TypeError(
      `${where}: option "requestCert" must be a boolean, not ${describe(options.requestCert)}`,
    );
  if (options.requestCert && ca === undefined)
    throw new TypeError(
      `${where}: option "requestCert" needs "caFile": the authorities whose client certificates count`,
    );
  const handshakeTimeout =
    options.handshakeTimeout === undefined
      ? DEFAULT_HANDSHAKE_TIMEOUT
      : checkSeconds(where, 'handshakeTimeout', options.handshakeTimeout);
  return new SslServerContext(
    {
      cert,
      key,
      passphrase: options.password,
      ca,
      requestCert: options.requestCert ?? false,
      files: { cert: options.certFile, key: options.keyFile, ca: options.caFile },
    },
    handshakeTimeout,
  );
}

/** `comm:create-ssl-client-context`: verification on unless `verify: false` says otherwise. */
export function createSslClientContext(options: SslClientContextOptions = {}): SslClientContext {
  const where = 'createSslClientContext';
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${where}: options must be an object, not ${describe(options)}`);
  checkKnown(where, options, clientKnown);
  if (options.verify !== undefined && typeof options.verify !== 'boolean')
    throw new TypeError(`${where}: option "verify" must be a boolean, not ${describe(options.verify)}`);
  if ((options.certFile === undefined) !== (options.keyFile === undefined))
    throw new TypeError(`${where}: options "certFile" and "keyFile" go together`);
  return new SslClientContext({
    ca: options.caFile === undefined ? undefined : pemFile(where, 'caFile', options.caFile, 'CERTIFICATE'),
    verify: options.verify ?? true,
    cert:
      options.certFile === undefined
        ? undefined
        : pemFile(where, 'certFile', options.certFile, 'CERTIFICATE'),
    key:
      options.keyFile === undefined ? undefined : pemFile(where, 'keyFile', options.keyFile, 'PRIVATE KEY'),
  });
}

/** The default client context (`sslCtx: true`): the system's roots, host names verified. */
let defaultClient: SslClientContext | null = null;
export function defaultSslClientContext(): SslClientContext {
  defaultClient ??= new SslClientContext({ verify: true });
  return defaultClient;
}

/**
 * Awaits a connection's TLS handshake for at most `seconds`; rejects with the TLS error, or with
 * an ETIMEDOUT error that says how long it waited. The caller destroys the connection on failure.
 */
export async function handshakeWithin(
  handshake: Promise<void>,
  seconds: number,
  what: string,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          Object.assign(new Error(`the TLS handshake ${what} did not finish within ${seconds} s`), {
            code: 'ETIMEDOUT',
          }),
        ),
      seconds * 1000,
    );
  });
  try {
    await Promise.race([handshake, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Why a server could not start or stopped: what `[null, condition]` and `announce(null, condition)` carry. */
export class StartupCondition extends Error {
  override readonly name = 'StartupCondition';
  /** The system's error code when there is one: `EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, `ENOTFOUND`. */
  readonly code: string | undefined;

  constructor(message: string, options: { code?: string | undefined; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = options.code;
  }
}

/**
 * Why `openTcpStream` could not connect: what `errorp: true` rejects with, the same class on every
 * backend. `code` is the system's error name (`ECONNREFUSED`, `ETIMEDOUT`, `ENOTFOUND`, ...).
 */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly code: string;
  /** The host and port that were tried (the last of them, when a name had several addresses). */
  readonly host: string;
  readonly port: number;
  /** True when the TCP connection was made and the TLS handshake failed (verification, protocol, timeout). */
  readonly tls: boolean;

  constructor(
    message: string,
    options: { code: string; host: string; port: number; tls?: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.code = options.code;
    this.host = options.host;
    this.port = options.port;
    this.tls = options.tls ?? false;
  }
}

const explanations: Record<string, string> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  EAFNOSUPPORT: 'the address family is not supported here',
  EINVAL: 'the address is not valid for this socket',
};

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A condition for a failed bind that names the address, the port and the cause. */
export function listenCondition(host: string, port: number, error: unknown): StartupCondition {
  const code = errorCode(error);
  const why = (code && explanations[code]) ?? (error instanceof Error ? error.message : String(error));
  const where = host.includes(':') ? `[${host}]` : host;
  return new StartupCondition(`cannot listen on ${where} port ${port}: ${why}${code ? ` (${code})` : ''}`, {
    code,
    cause: error,
  });
}

/**
 * A listening socket made and accepted on with libc through Deno's FFI, for what `Deno.listen`
 * cannot ask the kernel for: IPV6_V6ONLY (Deno leaves the OS default, dual-stack on Linux), and
 * SO_REUSEPORT without `--unstable-net`.
 *
 * The listener is pull-based like `Deno.listen`'s: `accept4` runs only when core asks for the next
 * connection, so clients wait in the kernel's queue in order (R2) and a failure to accept (EMFILE)
 * reaches core with its code (R14). Waiting for a connection is a `poll` on one of Deno's blocking
 * threads (a nonblocking FFI call), never a busy loop; `shutdown` wakes it when the listener closes.
 * Each accepted descriptor is handed to Deno's `node:net` (`new net.Socket({ fd })`), and for a
 * TLS server on to its `node:tls` (`node-tls.ts`).
 *
 * Linux only (glibc; every architecture Deno ships for shares these constants); needs `--allow-ffi`.
 */
import type { Connection, Listener, SocketAddress } from '@comm/core/backend';
import {
  Ipv6Address,
  integerToIpv4,
  ipv4ToInteger,
  ipv6AddressString,
  parseIpv6Address,
} from '@comm/core/backend';
import { socketFromFd } from './node-socket.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const SO_ACCEPTCONN = 30;
const SHUT_RDWR = 2;
const POLLIN = 0x1;
const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_IN6_SIZE = 28;
/** A safety net only: `shutdown` wakes the poll at once when the listener closes. */
const POLL_TIMEOUT_MS = 5000;

const EINTR = 4;
const EBADF = 9;
const EAGAIN = 11;
const ECONNABORTED = 103;

/** errno values on Linux (asm-generic), by the names Node and Deno give them. */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  4: 'EINTR',
  9: 'EBADF',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  19: 'ENODEV',
  22: 'EINVAL',
  23: 'ENFILE',
  24: 'EMFILE',
  71: 'EPROTO',
  93: 'EPROTONOSUPPORT',
  97: 'EAFNOSUPPORT',
  98: 'EADDRINUSE',
  99: 'EADDRNOTAVAIL',
  103: 'ECONNABORTED',
  105: 'ENOBUFS',
};

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, length: Uint8Array): number;
  bind(fd: number, address: Uint8Array, length: number): number;
  listen(fd: number, backlog: number): number;
  getsockname(fd: number, address: Uint8Array, length: Uint8Array): number;
  accept4(fd: number, address: null, length: null, flags: number): number;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  if_nametoindex(name: Uint8Array): number;
  __errno_location(): object | null;
  /** On one of Deno's blocking threads: the event loop goes on meanwhile. */
  poll(fds: Uint8Array, count: number, timeoutMs: number): Promise<number>;
}

let libc: Libc | null = null;

function open(): Libc {
  if (libc) return libc;
  const library = Deno.dlopen('libc.so.6', {
    socket: { parameters: ['i32', 'i32', 'i32'], result: 'i32' },
    setsockopt: { parameters: ['i32', 'i32', 'i32', 'buffer', 'u32'], result: 'i32' },
    getsockopt: { parameters: ['i32', 'i32', 'i32', 'buffer', 'buffer'], result: 'i32' },
    bind: { parameters: ['i32', 'buffer', 'u32'], result: 'i32' },
    listen: { parameters: ['i32', 'i32'], result: 'i32' },
    getsockname: { parameters: ['i32', 'buffer', 'buffer'], result: 'i32' },
    accept4: { parameters: ['i32', 'pointer', 'pointer', 'i32'], result: 'i32' },
    shutdown: { parameters: ['i32', 'i32'], result: 'i32' },
    close: { parameters: ['i32'], result: 'i32' },
    if_nametoindex: { parameters: ['buffer'], result: 'u32' },
    __errno_location: { parameters: [], result: 'pointer' },
    poll: { parameters: ['buffer', 'usize', 'i32'], result: 'i32', nonblocking: true },
  });
  libc = library.symbols as Libc;
  return libc;
}

/** Why the FFI route cannot be taken here, or null if it can. */
export function ffiUnavailable(): string | null {
  if (Deno.build.os !== 'linux') return `it is implemented for Linux only, and this is ${Deno.build.os}`;
  if (typeof Deno.dlopen !== 'function') return 'Deno.dlopen is not available';
  let state: string;
  try {
    state = Deno.permissions.querySync({ name: 'ffi' }).state;
  } catch {
    state = 'denied';
  }
  // 'prompt' would stop the server to ask the terminal: only an explicit grant counts.
  if (state !== 'granted') return 'the ffi permission is not granted (run Deno with --allow-ffi)';
  return null;
}

/** errno of the call that just failed; read at once, on the thread that made the call (this one). */
function lastErrno(lib: Libc): number {
  const pointer = lib.__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

function systemError(call: string, errno: number): Error {
  const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
  return Object.assign(new Error(`${call} failed: ${code}`), { code, errno, syscall: call });
}

function cString(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function int32(value: number): Uint8Array {
  return new Uint8Array(new Int32Array([value]).buffer);
}

/** struct sockaddr_in for a dotted quad. */
function sockaddrIn(host: string, port: number): Uint8Array {
  const address = ipv4ToInteger(host);
  if (address === null) throw Object.assign(new Error(`not an IPv4 address: ${host}`), { code: 'EINVAL' });
  const sockaddr = new Uint8Array(SOCKADDR_IN_SIZE);
  const view = new DataView(sockaddr.buffer);
  view.setUint16(0, AF_INET, true); // sin_family, host order
  view.setUint16(2, port, false); // sin_port, network order
  view.setUint32(4, address, false); // sin_addr, network order
  return sockaddr;
}

/** struct sockaddr_in6 for an IPv6 literal (with an optional `%scope`, a number or an interface name). */
function sockaddrIn6(host: string, port: number, lib: Libc): Uint8Array {
  const address = parseIpv6Address(host);
  if (!address) throw Object.assign(new Error(`not an IPv6 address: ${host}`), { code: 'EINVAL' });
  const sockaddr = new Uint8Array(SOCKADDR_IN6_SIZE);
  const view = new DataView(sockaddr.buffer);
  view.setUint16(0, AF_INET6, true); // sin6_family, host order
  view.setUint16(2, port, false); // sin6_port, network order
  sockaddr.set(address.bytes, 8); // sin6_addr, after sin6_flowinfo
  const scope = address.scopeId;
  if (scope !== null) {
    const index = /^\d+$/.test(scope) ? Number(scope) : lib.if_nametoindex(cString(scope));
    if (index === 0) throw Object.assign(new Error(`no network interface ${scope}`), { code: 'ENODEV' });
    view.setUint32(24, index, true); // sin6_scope_id
  }
  return sockaddr;
}

/** The address a socket is bound to, as the seam reports it. */
function localAddress(fd: number, lib: Libc): SocketAddress {
  const sockaddr = new Uint8Array(SOCKADDR_IN6_SIZE);
  const length = new Uint8Array(new Uint32Array([SOCKADDR_IN6_SIZE]).buffer);
  if (lib.getsockname(fd, sockaddr, length) < 0) throw systemError('getsockname', lastErrno(lib));
  const view = new DataView(sockaddr.buffer);
  const port = view.getUint16(2, false);
  if (view.getUint16(0, true) === AF_INET)
    return { address: integerToIpv4(view.getUint32(4, false)), port, family: 4 };
  return { address: ipv6AddressString(new Ipv6Address(sockaddr.slice(8, 24))), port, family: 6 };
}

export interface RawListenOptions {
  readonly host: string;
  readonly family: 4 | 6;
  readonly port: number;
  readonly ipv6Only: boolean;
  readonly reusePort: boolean;
  readonly backlog: number;
  /** What an accepted descriptor becomes: a plain `node:net` connection unless said otherwise (TLS). */
  readonly wrap?: ((fd: number) => Connection) | undefined;
}

/** A listening socket of our own, accepted on with `accept4`. */
class RawListener implements Listener {
  readonly local: SocketAddress;
  readonly #lib: Libc;
  readonly #fd: number;
  readonly #wrap: (fd: number) => Connection;
  #closed = false;
  #polling: Promise<number> | null = null;

  constructor(fd: number, lib: Libc, wrap: (fd: number) => Connection) {
    this.#fd = fd;
    this.#lib = lib;
    this.#wrap = wrap;
    this.local = localAddress(fd, lib);
  }

  async accept(): Promise<Connection | null> {
    const lib = this.#lib;
    while (!this.#closed) {
      // Wait first, on a blocking thread, until a connection is queued (or the socket is shut down):
      // Linux's accept takes a descriptor before it looks at the queue, so with none left it would
      // fail (EMFILE) even with no client waiting. Deno.listen's accept waits the same way.
      const pollfd = new Uint8Array(8);
      const view = new DataView(pollfd.buffer);
      view.setInt32(0, this.#fd, true);
      view.setInt16(4, POLLIN, true);
      this.#polling = lib.poll(pollfd, 1, POLL_TIMEOUT_MS);
      let ready: number;
      try {
        ready = await this.#polling;
      } finally {
        this.#polling = null;
      }
      if (this.#closed) break;
      if (ready === 0) continue;
      const fd = lib.accept4(this.#fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) return this.#wrap(fd);
      const errno = lastErrno(lib);
      // Taken by another socket of a SO_REUSEPORT group, or given up by the client meanwhile.
      if (errno === EAGAIN || errno === EINTR || errno === ECONNABORTED) continue;
      // Anything else (EMFILE, ENFILE, ENOBUFS, ENOMEM...) is core's to meet: it backs off, then reopens.
      throw systemError('accept', errno);
    }
    return null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const lib = this.#lib;
    // A poll on another thread holds the socket (and its port) open: shutdown wakes it, then close.
    lib.shutdown(this.#fd, SHUT_RDWR);
    const polling = this.#polling;
    if (polling) await polling;
    lib.close(this.#fd);
  }
}

/** socket, setsockopt, bind and listen: the listener, or an error with the system's `code`. */
export function listenRaw(options: RawListenOptions): Listener {
  const lib = open();
  const v6 = options.family === 6;
  const fd = lib.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw systemError('socket', lastErrno(lib));
  try {
    const one = int32(1);
    // SO_REUSEADDR as Deno.listen and libuv set it: a port whose connections linger in TIME_WAIT binds again at once.
    if (lib.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0)
      throw systemError('setsockopt', lastErrno(lib));
    if (options.reusePort && lib.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4) < 0)
      throw systemError('setsockopt', lastErrno(lib));
    if (v6 && lib.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int32(options.ipv6Only ? 1 : 0), 4) < 0)
      throw systemError('setsockopt', lastErrno(lib));
    const sockaddr = v6
      ? sockaddrIn6(options.host, options.port, lib)
      : sockaddrIn(options.host, options.port);
    if (lib.bind(fd, sockaddr, sockaddr.length) < 0) throw systemError('bind', lastErrno(lib));
    if (lib.listen(fd, options.backlog) < 0) throw systemError('listen', lastErrno(lib));
    return new RawListener(fd, lib, options.wrap ?? socketFromFd);
  } catch (error) {
    lib.close(fd);
    throw error;
  }
}

/** Descriptors taken as a `Deno.listen` listener's: never taken twice (an SO_REUSEPORT group shares one address). */
const claimed = new Set<number>();

/** Past the last descriptor in use, this many closed ones in a row end the search. */
const CLOSED_RUN = 64;

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const x = parseIpv6Address(a);
  const y = parseIpv6Address(b);
  return x !== null && y !== null && ipv6AddressString(x) === ipv6AddressString(y);
}

/**
 * The descriptor of the listening socket `Deno.listen` has just made on `local`, which Deno does
 * not tell: the lowest descriptor, not claimed yet, of a socket listening there (Linux gives a new
 * socket the lowest free descriptor). Null where FFI cannot be used, or if none is found.
 */
export function listenerDescriptor(local: SocketAddress): number | null {
  if (ffiUnavailable() !== null) return null;
  const lib = open();
  const value = new Uint8Array(4);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  const valueView = new DataView(value.buffer);
  for (let fd = 0, closed = 0; closed < CLOSED_RUN; fd++) {
    lengthView.setUint32(0, 4, true);
    if (lib.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, value, length) < 0) {
      // Not open (EBADF), or no socket (ENOTSOCK).
      closed = lastErrno(lib) === EBADF ? closed + 1 : 0;
      continue;
    }
    closed = 0;
    if (claimed.has(fd) || valueView.getInt32(0, true) !== 1) continue;
    let bound: SocketAddress;
    try {
      bound = localAddress(fd, lib);
    } catch {
      continue;
    }
    if (
      bound.port === local.port &&
      bound.family === local.family &&
      sameHost(bound.address, local.address)
    ) {
      claimed.add(fd);
      return fd;
    }
  }
  return null;
}

/**
 * Stops a `Deno.listen` listener at once (R15): shut down, its socket leaves LISTEN, and the port
 * can be bound again before this returns. Deno closes the descriptor itself only once the pending
 * `accept()` has been cancelled, on a later turn of the event loop (denoland/deno#22885).
 */
export function shutdownListener(fd: number): void {
  claimed.delete(fd);
  open().shutdown(fd, SHUT_RDWR);
}

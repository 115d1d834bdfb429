import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { Ipv6Address, ipv6AddressString, type SocketAddress } from '@comm/core/backend';

/** An address as uWS gives it (4 or 16 bytes) as text: a dotted quad, or IPv6 without brackets. */
export function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length === 16) return ipv6AddressString(new Ipv6Address(Uint8Array.from(bytes)));
  return '';
}

/** True for 0.0.0.0 and ::, the addresses that stand for every address. */
export function isAnyAddress(host: string): boolean {
  return host === '0.0.0.0' || /^[0:]+$/.test(host);
}

interface KernelSocket {
  /** The local address as the kernel prints it (hex words). */
  readonly localHex: string;
  readonly remotePort: number;
  readonly inode: string;
}

const ESTABLISHED = '01';

/** After a read that found a burst, the next read for it waits this many times as long as the read took. */
const CROWDED_SPACING = 20;

/** One word of /proc/net/tcp's hex address: the kernel prints each 32-bit word in host byte order. */
function wordBytes(hex: string): number[] {
  const value = Number.parseInt(hex, 16);
  const big = [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return endianness() === 'LE' ? big.reverse() : big;
}

function hexBytes(hex: string): Uint8Array {
  const bytes: number[] = [];
  for (let at = 0; at < hex.length; at += 8) bytes.push(...wordBytes(hex.slice(at, at + 8)));
  return Uint8Array.from(bytes);
}

/** The inverse of `hexBytes`: an address as /proc/net/tcp{,6} prints it. */
function kernelHex(bytes: Uint8Array): string {
  let hex = '';
  for (let at = 0; at < bytes.length; at += 4) {
    const word = [...bytes.subarray(at, at + 4)];
    if (endianness() === 'LE') word.reverse();
    for (const b of word) hex += b.toString(16).padStart(2, '0');
  }
  return hex.toUpperCase();
}

function portHex(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * One of /proc/net/tcp and /proc/net/tcp6, read at most once per turn of the event loop and kept
 * as an index: listening port and peer address to the established sockets no live connection has
 * claimed. Reading it costs time in proportion to every socket of the network namespace, so
 * reading it once per accepted connection made accepting quadratic; once per turn spreads that
 * over every connection upgraded in the turn.
 *
 * A read in the turn that upgrades a connection lists that connection's socket: uSockets accepts
 * a connection in one turn and first hears from it (its upgrade request) in a later one, as libuv
 * adds a new socket to epoll only at the start of its next poll. An older read might not list it,
 * and might list one other candidate instead: so it is never used.
 */
class SocketTable {
  /** `${local port} ${peer address}` (kernel hex) to unclaimed established sockets. */
  #unclaimed = new Map<string, KernelSocket[]>();
  /** Inodes of the sockets live connections have claimed. */
  readonly #claimed = new Set<string>();
  #fresh = false;
  /** How long the last read took (ms). */
  #readMs = 0;
  /** Keys whose last read found several sockets fitting, to when reading again for them is worth it. */
  readonly #crowded = new Map<string, number>();
  /** The listening ports asked about (kernel hex): rows of other sockets are skipped unparsed. */
  readonly #ports = new Set<string>();

  constructor(readonly file: string) {}

  take(listenPort: number, remote: Uint8Array, remotePort: number | null): KernelSocket | null {
    const port = portHex(listenPort);
    this.#ports.add(port);
    const key = `${port} ${kernelHex(remote)}`;
    if (!this.#fresh) {
      // A burst of clients from one address: while it lasts its sockets cannot be told apart, and
      // a read per turn would cost as much as the accepting. Reads for it take at most a
      // (CROWDED_SPACING + 1)th of the time; the connections in between get no port, as they would
      // from a read.
      if (performance.now() < (this.#crowded.get(key) ?? 0)) return null;
      this.#read();
    }
    const sockets = this.#unclaimed.get(key) ?? [];
    const fits = remotePort === null ? sockets : sockets.filter((s) => s.remotePort === remotePort);
    const [only] = fits;
    if (fits.length > 1) this.#crowded.set(key, performance.now() + CROWDED_SPACING * this.#readMs);
    if (fits.length !== 1 || !only) return null;
    this.#claimed.add(only.inode);
    this.#unclaimed.set(
      key,
      sockets.filter((s) => s !== only),
    );
    return only;
  }

  #read(): void {
    const started = performance.now();
    this.#fresh = true;
    setImmediate(() => {
      this.#fresh = false;
    });
    let text = '';
    try {
      text = readFileSync(this.file, 'latin1');
    } catch {
      // No /proc (or not this family): nothing fits.
    }
    const unclaimed = new Map<string, KernelSocket[]>();
    // The kernel makes the file a page at a time, so while connections come and go one socket can
    // be listed twice: kept by inode.
    const live = new Set<string>();
    for (const line of text.split('\n')) {
      // "  sl: LOCAL:PORT REMOTE:PORT ST tx:rx tr:when retrnsmt uid timeout inode ..."
      // Most rows are other sockets (the clients' ends, other servers): look at the local port first.
      const localEnd = line.indexOf(' ', line.indexOf(': ') + 2);
      if (localEnd < 0 || !this.#ports.has(line.slice(localEnd - 4, localEnd))) continue;
      const fields = line.trim().split(/\s+/, 10);
      const inode = fields[9];
      // Inode 0: still in the accept queue, so no connection uWS has.
      if (fields[3] !== ESTABLISHED || !inode || inode === '0' || live.has(inode)) continue;
      live.add(inode);
      if (this.#claimed.has(inode)) continue;
      const [localHex = '', localPort = ''] = (fields[1] ?? '').split(':');
      const [remoteHex = '', remotePort = ''] = (fields[2] ?? '').split(':');
      const key = `${localPort} ${remoteHex}`;
      const socket = { localHex, remotePort: Number.parseInt(remotePort, 16), inode };
      const list = unclaimed.get(key);
      if (list) list.push(socket);
      else unclaimed.set(key, [socket]);
    }
    // A claim lasts as long as the kernel's socket (a connection closed with a close frame stays
    // established until the peer answers), so that it is not taken for the next connection.
    for (const inode of this.#claimed) if (!live.has(inode)) this.#claimed.delete(inode);
    this.#unclaimed = unclaimed;
    for (const [key, until] of this.#crowded) if (until <= started) this.#crowded.delete(key);
    this.#readMs = performance.now() - started;
  }
}

/**
 * The two ends of an accepted connection as the kernel has them. uWebSockets.js 20.30 reports
 * neither the peer's port nor the local address of an accepted socket (no getRemotePort, no file
 * descriptor), so they are read from /proc/net/tcp{,6} (Linux): the established socket on the
 * listening port whose peer has the address uWS reported (and the port, when the build reports
 * it) and which no other live connection has claimed. When several unclaimed sockets fit, nothing
 * is claimed: a wrong port would be worse than none.
 */
export class KernelEnds {
  readonly #tables = { 4: new SocketTable('/proc/net/tcp'), 6: new SocketTable('/proc/net/tcp6') };

  find(
    listenPort: number,
    remote: Uint8Array,
    remotePort: number | null,
  ): { local: Uint8Array; remotePort: number } | null {
    if (process.platform !== 'linux' || (remote.length !== 4 && remote.length !== 16)) return null;
    // A socket on :: lists its IPv4 peers in tcp6, as mapped addresses: the family of uWS's address is the file's.
    const found = this.#tables[remote.length === 4 ? 4 : 6].take(listenPort, remote, remotePort);
    return found && { local: hexBytes(found.localHex), remotePort: found.remotePort };
  }
}

export function socketAddress(bytes: Uint8Array, port: number): SocketAddress {
  return { address: addressText(bytes), port, family: bytes.length === 4 ? 4 : 6 };
}

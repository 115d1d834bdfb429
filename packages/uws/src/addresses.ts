import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { Ipv6Address, ipv6AddressString, type SocketAddress } from '@comm/core';

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
  readonly local: Uint8Array;
  readonly localPort: number;
  readonly remote: Uint8Array;
  readonly remotePort: number;
  readonly inode: string;
}

const ESTABLISHED = '01';

/** One word of /proc/net/tcp's hex address: the kernel prints each 32-bit word in host byte order. */
function wordBytes(hex: string): number[] {
  const value = Number.parseInt(hex, 16);
  const big = [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return endianness() === 'LE' ? big.reverse() : big;
}

function parseEnd(text: string): { bytes: Uint8Array; port: number } | null {
  const [hex, port] = text.split(':');
  if (hex === undefined || port === undefined || (hex.length !== 8 && hex.length !== 32)) return null;
  const bytes: number[] = [];
  for (let at = 0; at < hex.length; at += 8) bytes.push(...wordBytes(hex.slice(at, at + 8)));
  return { bytes: Uint8Array.from(bytes), port: Number.parseInt(port, 16) };
}

/**
 * The established TCP sockets of this network namespace whose local port is `port`. The kernel
 * makes /proc/net/tcp a page at a time, so while connections come and go one socket can be listed
 * twice: sockets are kept by inode.
 */
function established(port: number): KernelSocket[] {
  const found = new Map<string, KernelSocket>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] !== ESTABLISHED) continue;
      const local = parseEnd(fields[1] ?? '');
      const remote = parseEnd(fields[2] ?? '');
      if (!local || !remote || local.port !== port) continue;
      const inode = fields[9] ?? '';
      found.set(inode, {
        local: local.bytes,
        localPort: local.port,
        remote: remote.bytes,
        remotePort: remote.port,
        inode,
      });
    }
  }
  return [...found.values()];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * The two ends of an accepted connection as the kernel has them. uWebSockets.js 20.30 reports
 * neither the peer's port nor the local address of an accepted socket, so they are read from
 * /proc/net/tcp{,6} (Linux): the established socket on the listening port whose peer has the
 * address uWS reported (and the port, when the build reports it) and which no other live
 * connection has claimed. A claim lasts as long as the kernel's socket: a connection closed with a
 * close frame stays established until the peer answers it, and must not be taken for the next one.
 * When several unclaimed sockets fit, nothing is claimed: a wrong port would be worse than none.
 */
export class KernelEnds {
  /** Claimed sockets: inode to local port. */
  readonly #claimed = new Map<string, number>();

  find(
    listenPort: number,
    remote: Uint8Array,
    remotePort: number | null,
  ): { local: Uint8Array; remotePort: number } | null {
    if (process.platform !== 'linux') return null;
    const sockets = established(listenPort);
    const live = new Set(sockets.map((s) => s.inode));
    for (const [inode, port] of this.#claimed)
      if (port === listenPort && !live.has(inode)) this.#claimed.delete(inode);
    const fits = sockets.filter(
      (s) =>
        sameBytes(s.remote, remote) &&
        (remotePort === null || s.remotePort === remotePort) &&
        !this.#claimed.has(s.inode),
    );
    const [only] = fits;
    if (fits.length !== 1 || !only) return null;
    this.#claimed.set(only.inode, listenPort);
    return { local: only.local, remotePort: only.remotePort };
  }
}

export function socketAddress(bytes: Uint8Array, port: number): SocketAddress {
  return { address: addressText(bytes), port, family: bytes.length === 4 ? 4 : 6 };
}

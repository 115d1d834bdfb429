/**
 * Which peers may send a PROXY protocol header: a list of addresses and CIDR blocks turned once
 * into masks, then a predicate run once per connection on the peer address the runtime reports.
 *
 * IPv4 and IPv6 are separate spaces, with one bridge: an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, how a dual-stack socket shows an IPv4 peer) is that IPv4 address, both as a
 * peer and as an entry. So `127.0.0.0/8` trusts `::ffff:127.0.0.1`, and `::ffff:10.0.0.0/104` is
 * the same block as `10.0.0.0/8`; `::/0` does not take in IPv4 peers.
 */

import { ipv4ToInteger, parseIpv6Address } from './address.js';

/** A predicate over IP literals (as runtimes report peers: '127.0.0.1', '::1', '::ffff:10.1.2.3', 'fe80::1%eth0'). */
export type TrustedSources = (address: string) => boolean;

/** The default: loopback only (127.0.0.0/8 and ::1). */
export const LOOPBACK_SOURCES: readonly string[] = Object.freeze(['127.0.0.0/8', '::1']);

// Only the characters of plain IPv6 text: no brackets, zone or prefix, which are handled apart.
const IPV6_TEXT = /^[0-9A-Fa-f:.]+$/;
const PREFIX = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Builds it from addresses or CIDR blocks: '10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8'.
 * Throws a TypeError that names the bad entry (`trustedProxies: "10.0.0.0/33" is not an address or CIDR block`).
 */
export function trustedSources(list: readonly string[]): TrustedSources {
  if (!Array.isArray(list)) {
    throw new TypeError('trustedProxies: expected an array of addresses or CIDR blocks');
  }
  // Flat arrays of [network, mask] for IPv4 and [4 network words, 4 mask words] for IPv6.
  const v4: number[] = [];
  const v6: number[] = [];
  for (const entry of list as readonly unknown[]) {
    const block = parseBlock(entry);
    if (block === null) {
      throw new TypeError(`trustedProxies: ${describe(entry)} is not an address or CIDR block`);
    }
    if (block.family === 4) v4.push(block.network, block.mask);
    else v6.push(...block.network, ...block.mask);
  }
  const ipv4Blocks = Uint32Array.from(v4);
  const ipv6Blocks = Uint32Array.from(v6);

  const matchesIpv4 = (address: number): boolean => {
    for (let i = 0; i < ipv4Blocks.length; i += 2) {
      if ((address & (ipv4Blocks[i + 1] ?? 0)) >>> 0 === ipv4Blocks[i]) return true;
    }
    return false;
  };

  const matchesIpv6 = (words: Uint32Array): boolean => {
    for (let i = 0; i < ipv6Blocks.length; i += 8) {
      let inside = true;
      for (let w = 0; w < 4 && inside; w++) {
        inside = ((words[w] ?? 0) & (ipv6Blocks[i + 4 + w] ?? 0)) >>> 0 === ipv6Blocks[i + w];
      }
      if (inside) return true;
    }
    return false;
  };

  return (address: string): boolean => {
    if (typeof address !== 'string') return false;
    const ipv4 = ipv4ToInteger(address);
    if (ipv4 !== null) return matchesIpv4(ipv4);

    // A zone (`%eth0`) says which link, not which host: it is left out of the match.
    const percent = address.indexOf('%');
    if (percent === address.length - 1) return false;
    const text = percent < 0 ? address : address.slice(0, percent);
    if (!IPV6_TEXT.test(text)) return false;
    const parsed = parseIpv6Address(text);
    if (parsed === null) return false;
    const mapped = parsed.toIpv4();
    if (mapped !== null) return matchesIpv4(mapped);
    return ipv6Blocks.length > 0 && matchesIpv6(toWords(parsed.bytes));
  };
}

type Block =
  | { readonly family: 4; readonly network: number; readonly mask: number }
  | { readonly family: 6; readonly network: Uint32Array; readonly mask: Uint32Array };

/** `a.b.c.d[/0-32]` or plain IPv6 text `[/0-128]`; host bits are masked off. Null for anything else. */
function parseBlock(entry: unknown): Block | null {
  if (typeof entry !== 'string') return null;
  const slash = entry.indexOf('/');
  const addressText = slash < 0 ? entry : entry.slice(0, slash);
  let prefix: number | null = null;
  if (slash >= 0) {
    const prefixText = entry.slice(slash + 1);
    if (!PREFIX.test(prefixText)) return null;
    prefix = Number(prefixText);
  }

  const ipv4 = ipv4ToInteger(addressText);
  if (ipv4 !== null) return ipv4Block(ipv4, prefix ?? 32);

  if (!IPV6_TEXT.test(addressText)) return null;
  const ipv6 = parseIpv6Address(addressText);
  if (ipv6 === null) return null;
  const length = prefix ?? 128;
  if (length > 128) return null;
  const mapped = ipv6.toIpv4();
  // A block inside ::ffff:0:0/96 is a block of IPv4 addresses, and mapped peers are matched as IPv4.
  if (mapped !== null && length >= 96) return ipv4Block(mapped, length - 96);

  const mask = new Uint32Array(4);
  for (let w = 0; w < 4; w++) mask[w] = prefixMask(Math.min(32, Math.max(0, length - 32 * w)));
  const network = toWords(ipv6.bytes);
  for (let w = 0; w < 4; w++) network[w] = ((network[w] ?? 0) & (mask[w] ?? 0)) >>> 0;
  return { family: 6, network, mask };
}

function ipv4Block(address: number, length: number): Block | null {
  if (length > 32) return null;
  const mask = prefixMask(length);
  return { family: 4, network: (address & mask) >>> 0, mask };
}

/** The 32-bit mask with the top `bits` bits set (0 to 32). */
function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

function toWords(bytes: Uint8Array): Uint32Array {
  const words = new Uint32Array(4);
  for (let w = 0; w < 4; w++) {
    const at = 4 * w;
    words[w] =
      (((bytes[at] ?? 0) << 24) |
        ((bytes[at + 1] ?? 0) << 16) |
        ((bytes[at + 2] ?? 0) << 8) |
        (bytes[at + 3] ?? 0)) >>>
      0;
  }
  return words;
}

/** Names a bad entry in the error message without letting the message itself throw. */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

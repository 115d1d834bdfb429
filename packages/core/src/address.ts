import { describe } from './describe.js';
/**
 * IP addresses as LispWorks' COMM package has them: an IPv4 address is an integer in network
 * order (`0xCC47B14B` is 204.71.177.75) and an IPv6 address is an `Ipv6Address` object.
 *
 * Pure string and byte work, so it runs unchanged on Node, Bun and Deno.
 */

/** An IPv6 address with the scope id and prefix length it was written with. */
export class Ipv6Address {
  readonly bytes: Uint8Array;
  /** The zone (`eth0`, `2`) a link-local address needs to be usable; not part of the address. */
  readonly scopeId: string | null;
  /** Remembered from `/64` text as LispWorks does; it does not change the address. */
  readonly prefixLength: number | null;

  constructor(bytes: Uint8Array, scopeId: string | null = null, prefixLength: number | null = null) {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 16) {
      throw new TypeError(`An IPv6 address needs 16 bytes, got ${describe(bytes)}`);
    }
    if (scopeId !== null && (typeof scopeId !== 'string' || !SCOPE.test(scopeId))) {
      throw new TypeError(`Bad IPv6 scope id: ${describe(scopeId)}`);
    }
    if (
      prefixLength !== null &&
      !(Number.isInteger(prefixLength) && prefixLength >= 0 && prefixLength <= 128)
    ) {
      throw new TypeError(`Bad IPv6 prefix length: ${describe(prefixLength)}`);
    }
    // A private copy, so a caller reusing its buffer cannot change an address after the fact.
    this.bytes = Uint8Array.from(bytes);
    this.scopeId = scopeId;
    this.prefixLength = prefixLength;
  }

  toString(): string {
    return ipv6AddressString(this);
  }

  /** Same bytes and scope. The prefix length is ignored: it does not change which host this is. */
  equals(other: Ipv6Address): boolean {
    return (
      other instanceof Ipv6Address &&
      this.scopeId === other.scopeId &&
      this.bytes.every((byte, i) => byte === other.bytes[i])
    );
  }

  /** `::ffff:a.b.c.d`: how a dual-stack socket shows an IPv4 peer. */
  isIpv4Mapped(): boolean {
    const b = this.bytes;
    return b.subarray(0, 10).every((byte) => byte === 0) && b[10] === 0xff && b[11] === 0xff;
  }

  /** The IPv4 integer inside a mapped address, or null for any other address. */
  toIpv4(): number | null {
    return this.isIpv4Mapped() ? readUint32(this.bytes, 12) : null;
  }
}

// Interface names and numeric zones; nothing that would make the printed text ambiguous.
const SCOPE = /^[^\s%/[\]]+$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
// No leading zeros: inet_aton reads them as octal, inet_pton refuses them, so they are ambiguous.
const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const PREFIX = /^(?:0|[1-9]\d{0,2})$/;

/**
 * Parses IPv6 text: full or `::`-compressed, any hex case, an optional dotted-quad tail
 * (`::ffff:1.2.3.4`), then an optional `%scope` and `/prefix`, optionally inside `[ ]`.
 * Returns null for anything else, never throws.
 */
export function parseIpv6Address(text: string): Ipv6Address | null {
  if (typeof text !== 'string') return null;
  let rest = text;
  if (rest.startsWith('[') && rest.endsWith(']')) rest = rest.slice(1, -1);

  let prefixLength: number | null = null;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const prefix = rest.slice(slash + 1);
    if (!PREFIX.test(prefix)) return null;
    prefixLength = Number(prefix);
    if (prefixLength > 128) return null;
    rest = rest.slice(0, slash);
  }

  let scopeId: string | null = null;
  const percent = rest.indexOf('%');
  if (percent >= 0) {
    scopeId = rest.slice(percent + 1);
    if (!SCOPE.test(scopeId)) return null;
    rest = rest.slice(0, percent);
  }

  const bytes = parseIpv6Bytes(rest);
  return bytes === null ? null : new Ipv6Address(bytes, scopeId, prefixLength);
}

function parseIpv6Bytes(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const compressed = halves.length === 2;
  // A dotted quad may only end the address, so only the last written half may hold one.
  const head = parseGroups(halves[0] ?? '', !compressed);
  const tail = compressed ? parseGroups(halves[1] ?? '', true) : [];
  if (head === null || tail === null) return null;

  const written = head.length + tail.length;
  // `::` stands for at least one zero group, so it cannot sit beside 8 written ones.
  if (compressed ? written > 7 : written !== 8) return null;

  const groups = [...head, ...new Array<number>(8 - written).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [i, group] of groups.entries()) {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  }
  return bytes;
}

/** Colon-separated hex groups as 16-bit numbers; '' is no groups (one side of `::`). */
function parseGroups(text: string, mayEndInIpv4: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (HEX_GROUP.test(part)) {
      groups.push(Number.parseInt(part, 16));
    } else if (mayEndInIpv4 && i === parts.length - 1) {
      const ipv4 = ipv4ToInteger(part);
      if (ipv4 === null) return null;
      groups.push(ipv4 >>> 16, ipv4 & 0xffff);
    } else {
      return null;
    }
  }
  return groups;
}

/**
 * RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups
 * (the first of equals) as `::`, mapped addresses with a dotted tail, then `%scope`.
 * The prefix length is left out, so the result is an address a socket API takes.
 */
export function ipv6AddressString(a: Ipv6Address): string {
  const scope = a.scopeId === null ? '' : `%${a.scopeId}`;
  const ipv4 = a.toIpv4();
  if (ipv4 !== null) return `::ffff:${integerToIpv4(ipv4)}${scope}`;

  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a.bytes[i] ?? 0) << 8) | (a.bytes[i + 1] ?? 0));

  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }

  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups) + scope;
  const before = hex(groups.slice(0, bestStart));
  const after = hex(groups.slice(bestStart + bestLength));
  return `${before}::${after}${scope}`;
}

/** `"204.71.177.75"` -> `0xCC47B14B`; null unless the text is exactly a dotted quad. */
export function ipv4ToInteger(text: string): number | null {
  if (typeof text !== 'string') return null;
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    n = n * 256 + octet; // multiplication, not <<, so the top bit does not turn the number negative
  }
  return n;
}

/** `0xCC47B14B` -> `"204.71.177.75"`. */
export function integerToIpv4(n: number): string {
  if (!isIpv4Integer(n)) throw new TypeError(`Not an IPv4 address integer: ${describe(n)}`);
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** LispWorks' `ip-address-string`: dotted quad for an integer, RFC 5952 text for IPv6. */
export function ipAddressString(a: number | Ipv6Address): string {
  if (a instanceof Ipv6Address) return ipv6AddressString(a);
  if (isIpv4Integer(a)) return integerToIpv4(a);
  throw new TypeError(`Not an IP address: ${describe(a)}`);
}

/** LispWorks' `string-ip-address`: an integer for a dotted quad, an Ipv6Address, or null. */
export function stringIpAddress(s: string): number | Ipv6Address | null {
  return ipv4ToInteger(s) ?? parseIpv6Address(s);
}

export function isIpv4Literal(s: string): boolean {
  return ipv4ToInteger(s) !== null;
}

/** True for IPv6 text that names a host: a `/prefix` makes it a network, so false then. */
export function isIpv6Literal(s: string): boolean {
  const a = parseIpv6Address(s);
  return a !== null && a.prefixLength === null;
}

/**
 * Turns an address as a runtime reports it (`127.0.0.1`, `::1`, `fe80::1%eth0`,
 * `::ffff:127.0.0.1`) into the LispWorks form. A mapped address stays an Ipv6Address when the
 * socket is IPv6 (that is what the peer looks like to it) and becomes an integer when the
 * runtime says the socket is IPv4. Throws a TypeError for text that is no address at all,
 * since that means a broken backend rather than bad user input.
 */
export function fromSocketAddress(address: string, family: 4 | 6): number | Ipv6Address {
  const ipv4 = ipv4ToInteger(address);
  if (ipv4 !== null) return ipv4;
  const ipv6 = parseIpv6Address(address);
  if (ipv6 === null || ipv6.prefixLength !== null) {
    throw new TypeError(`Not a socket address: ${describe(address)} (family ${describe(family)})`);
  }
  return family === 4 ? (ipv6.toIpv4() ?? ipv6) : ipv6;
}

/** The text a socket API takes: a dotted quad, or IPv6 with its `%scope` and without brackets. */
export function toLiteral(a: number | Ipv6Address): string {
  return ipAddressString(a);
}

function isIpv4Integer(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at);
}

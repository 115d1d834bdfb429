/**
 * The PROXY protocol header a load balancer puts before a client's bytes to tell the server who
 * the client is: version 1 (one text line) and version 2 (binary), as HAProxy's
 * `doc/proxy-protocol.txt` defines them, for a TCP server.
 *
 * The parser is re-run on everything received so far, so it only ever answers "read more",
 * "drop the connection" or "here is the header and where the client's data starts". It says
 * "drop" as soon as the bytes cannot start an allowed header, so a client that does not speak
 * the protocol (or speaks the other version) is turned away on its first bytes, not after a
 * timeout. Pure byte work: it runs unchanged on Node, Bun and Deno.
 */

import { Ipv6Address, ipv6AddressString, parseIpv6Address } from './address.js';

export type ProxyVersion = 'v1' | 'v2' | 'any';

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export type ProxyParse =
  | { readonly state: 'incomplete' } // a valid prefix so far: read more bytes
  | { readonly state: 'invalid'; readonly reason: string } // close the connection
  | {
      readonly state: 'complete';
      /** Bytes the header took; bytes after it are the client's data. */
      readonly length: number;
      /** null: LOCAL command, UNKNOWN, UNSPEC or AF_UNIX: use the real addresses. */
      readonly source: ProxyEndpoint | null;
      readonly destination: ProxyEndpoint | null;
    };

/** The most bytes a header may take: v1 107; v2 16 + its length field (at most 65535). */
export const PROXY_V1_MAX_LENGTH = 107;

const INCOMPLETE: ProxyParse = Object.freeze({ state: 'incomplete' });

/** Parses the header at the start of `bytes` (everything received so far, re-parsed whole on every call). */
export function parseProxyHeader(bytes: Uint8Array, version: ProxyVersion): ProxyParse {
  if (!(bytes instanceof Uint8Array)) return invalid('the PROXY header parser was given no bytes');
  if (version !== 'v1' && version !== 'v2' && version !== 'any') {
    return invalid('the PROXY protocol version setting is not v1, v2 or any');
  }
  if (bytes.length === 0) return INCOMPLETE;

  const first = bytes[0];
  if (first === V1_PREFIX[0] && version !== 'v2') return parseV1(bytes);
  if (first === V2_SIGNATURE[0] && version !== 'v1') return parseV2(bytes);

  // Name the other version when that is what arrived: a misconfigured proxy is the likely cause.
  if (version === 'v1' && startsLike(bytes, V2_SIGNATURE)) {
    return invalid('this is a PROXY protocol v2 header, but only v1 is accepted');
  }
  if (version === 'v2' && startsLike(bytes, V1_PREFIX)) {
    return invalid('this is a PROXY protocol v1 header, but only v2 is accepted');
  }
  return invalid(
    version === 'v1'
      ? 'no PROXY protocol v1 header: the connection does not start with "PROXY "'
      : version === 'v2'
        ? 'no PROXY protocol v2 header: the connection does not start with its signature'
        : 'no PROXY protocol header: the connection starts with neither "PROXY " nor the v2 signature',
  );
}

function invalid(reason: string): ProxyParse {
  return { state: 'invalid', reason };
}

/** True when `bytes` and `expected` agree on every position both have. */
function startsLike(bytes: Uint8Array, expected: Uint8Array): boolean {
  const n = Math.min(bytes.length, expected.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== expected[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Version 2: a 16-byte fixed part, then `length` bytes of addresses and TLVs.

const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** Address block sizes for the family/protocol bytes a TCP server takes with the PROXY command. */
const V2_ADDRESS_BYTES: ReadonlyMap<number, number> = new Map([
  [0x00, 0], // UNSPEC
  [0x11, 12], // TCP over IPv4: 2 * 4 + 2 * 2
  [0x21, 36], // TCP over IPv6: 2 * 16 + 2 * 2
  [0x31, 216], // UNIX stream: 2 * 108
]);

const V2_FAMILY_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, 'UNSPEC'],
  [0x11, 'TCP over IPv4'],
  [0x21, 'TCP over IPv6'],
  [0x31, 'UNIX stream'],
]);

function parseV2(bytes: Uint8Array): ProxyParse {
  const n = bytes.length;
  for (let i = 0; i < V2_SIGNATURE.length && i < n; i++) {
    if (bytes[i] !== V2_SIGNATURE[i]) {
      return invalid('no PROXY protocol header: the bytes break off from the v2 signature');
    }
  }
  if (n < 13) return INCOMPLETE;

  const versionAndCommand = bytes[12] ?? 0;
  const headerVersion = versionAndCommand >> 4;
  const command = versionAndCommand & 0x0f;
  if (headerVersion !== 2) {
    return invalid(`the PROXY v2 signature is followed by version ${headerVersion}, not 2`);
  }
  if (command !== 0 && command !== 1) {
    return invalid(`the PROXY v2 header has command ${command}, neither LOCAL (0) nor PROXY (1)`);
  }
  if (n < 14) return INCOMPLETE;

  // LOCAL: the proxy's own connection (a health check); the family byte is ignored, as the spec says.
  const family = bytes[13] ?? 0;
  let addressBytes = 0;
  if (command === 1) {
    const size = V2_ADDRESS_BYTES.get(family);
    if (size === undefined) {
      const low = family & 0x0f;
      const high = family >> 4;
      return invalid(
        low === 2 && high >= 1 && high <= 3
          ? `the PROXY v2 header is for a datagram (UDP) connection (family byte ${hexByte(family)}), not TCP`
          : `the PROXY v2 header has an unknown family and protocol byte ${hexByte(family)}`,
      );
    }
    addressBytes = size;
  }
  if (n < 16) return INCOMPLETE;

  const length = ((bytes[14] ?? 0) << 8) | (bytes[15] ?? 0);
  if (length < addressBytes) {
    return invalid(
      `the PROXY v2 length ${length} is too short for ${V2_FAMILY_NAMES.get(family) ?? 'its'} addresses (${addressBytes} bytes)`,
    );
  }
  const total = 16 + length;
  if (n < total) return INCOMPLETE;

  // Whatever follows the addresses up to `total` (TLVs, padding) is skipped unread.
  if (command === 1 && family === 0x11) {
    return complete(
      total,
      { address: ipv4At(bytes, 16), port: uint16At(bytes, 24), family: 4 },
      { address: ipv4At(bytes, 20), port: uint16At(bytes, 26), family: 4 },
    );
  }
  if (command === 1 && family === 0x21) {
    return complete(
      total,
      { address: ipv6Text(bytes.subarray(16, 32)), port: uint16At(bytes, 48), family: 6 },
      { address: ipv6Text(bytes.subarray(32, 48)), port: uint16At(bytes, 50), family: 6 },
    );
  }
  return complete(total, null, null);
}

function complete(
  length: number,
  source: ProxyEndpoint | null,
  destination: ProxyEndpoint | null,
): ProxyParse {
  return { state: 'complete', length, source, destination };
}

function hexByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function uint16At(bytes: Uint8Array, at: number): number {
  return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
}

function ipv4At(bytes: Uint8Array, at: number): string {
  return `${bytes[at] ?? 0}.${bytes[at + 1] ?? 0}.${bytes[at + 2] ?? 0}.${bytes[at + 3] ?? 0}`;
}

/**
 * IPv6 text as Node's `net` reports a peer (libuv's inet_ntop): RFC 5952 compression, and a
 * dotted tail for IPv4-mapped `::ffff:a.b.c.d` and for the deprecated IPv4-compatible
 * `::a.b.c.d` (but `::1` and `::2` stay hex, as there).
 */
function ipv6Text(sixteen: Uint8Array): string {
  let zeros = 0;
  while (zeros < 12 && sixteen[zeros] === 0) zeros++;
  if (zeros === 12 && ((sixteen[12] ?? 0) | (sixteen[13] ?? 0)) !== 0) {
    return `::${ipv4At(sixteen, 12)}`;
  }
  return ipv6AddressString(new Ipv6Address(sixteen));
}

// ---------------------------------------------------------------------------------------------
// Version 1: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN[ ...]\r\n`.

const V1_PREFIX = ascii('PROXY ');
const V1_PROTOCOLS = ['TCP4', 'TCP6', 'UNKNOWN'] as const;
const SPACE = 0x20;
const CR = 0x0d;
const LF = 0x0a;

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/**
 * Reads the text of a v1 field one byte at a time. `step` is false as soon as no valid field
 * starts with the bytes seen; `done` says whether they are a whole valid field; `minRemaining`
 * is how many more bytes the shortest valid field starting with them needs.
 */
interface FieldScanner {
  step(byte: number): boolean;
  done(): boolean;
  minRemaining(): number;
}

const FIELD_NAMES = ['source address', 'destination address', 'source port', 'destination port'] as const;

function parseV1(bytes: Uint8Array): ProxyParse {
  const n = Math.min(bytes.length, PROXY_V1_MAX_LENGTH);
  let i = 0;

  for (; i < V1_PREFIX.length; i++) {
    if (i >= n) return INCOMPLETE;
    if (bytes[i] !== V1_PREFIX[i]) {
      return invalid('no PROXY protocol v1 header: the connection does not start with "PROXY "');
    }
  }

  // The protocol word, matched against the three allowed ones as it arrives.
  let word = '';
  for (;;) {
    if (i >= n) return INCOMPLETE;
    const byte = bytes[i] ?? 0;
    const candidate = word + String.fromCharCode(byte);
    if (!V1_PROTOCOLS.some((p) => p.startsWith(candidate))) {
      if (word === 'TCP4' || word === 'TCP6' || word === 'UNKNOWN') break;
      if (word === '' && byte === SPACE) return invalid(TWO_SPACES);
      return invalid('the PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN');
    }
    word = candidate;
    i++;
  }

  if (word === 'UNKNOWN') return parseV1Unknown(bytes, n, i);

  // TCP4 or TCP6: four fields, each after exactly one space, then CRLF.
  const ipv6 = word === 'TCP6';
  const kinds = ['address', 'address', 'port', 'port'] as const;
  const starts = [0, 0, 0, 0];
  // The shortest a field can be (`0.0.0.0`, `::`, `0`), for the 107-byte limit.
  const shortest = ipv6 ? [2, 2, 1, 1] : [7, 7, 1, 1];
  let field = -1; // -1: the space after the protocol word is still to come
  let scanner: FieldScanner | null = null;
  let fieldLength = 0;

  for (; i < n; i++) {
    const byte = bytes[i] ?? 0;
    if (field === -1) {
      if (byte !== SPACE) return invalid(`the PROXY v1 protocol ${word} must be followed by one space`);
      field = 0;
      scanner = newScanner(kinds[0], ipv6);
      starts[0] = i + 1;
      fieldLength = 0;
    } else if (scanner === null) {
      // The CR after the last field has been read: only LF may follow.
      if (byte !== LF) return invalid('the PROXY v1 line has a CR not followed by LF');
      return finishV1Tcp(bytes, ipv6, starts, i + 1);
    } else if (byte === SPACE || byte === CR) {
      const name = FIELD_NAMES[field] ?? 'field';
      if (fieldLength === 0) {
        return invalid(byte === SPACE ? TWO_SPACES : `the PROXY v1 line ends where the ${name} should be`);
      }
      if (!scanner.done()) return invalid(fieldReason(field, ipv6));
      if (byte === SPACE && field === 3) {
        return invalid('the PROXY v1 line goes on after the destination port');
      }
      if (byte === CR && field < 3) return invalid(`the PROXY v1 line ends after the ${name}`);
      if (byte === CR) {
        scanner = null;
      } else {
        field++;
        scanner = newScanner(kinds[field] ?? 'port', ipv6);
        starts[field] = i + 1;
        fieldLength = 0;
      }
    } else if (byte === LF) {
      return invalid('the PROXY v1 line ends with a bare LF instead of CRLF');
    } else {
      if (!scanner.step(byte)) return invalid(fieldReason(field, ipv6));
      fieldLength++;
    }

    // Could the line still end within 107 bytes?
    let needed = 1; // the LF after the last CR
    if (scanner !== null) {
      needed = scanner.minRemaining() + 2; // this field, then CRLF
      for (let later = field + 1; later < 4; later++) needed += 1 + (shortest[later] ?? 1);
    }
    if (i + 1 + needed > PROXY_V1_MAX_LENGTH) return tooLong();
  }
  return bytes.length > n ? tooLong() : INCOMPLETE;
}

const TWO_SPACES = 'the PROXY v1 line has two spaces in a row: fields are separated by exactly one space';

function tooLong(): ProxyParse {
  return invalid(`the PROXY v1 line has no CRLF within its first ${PROXY_V1_MAX_LENGTH} bytes`);
}

function fieldReason(field: number, ipv6: boolean): string {
  const name = FIELD_NAMES[field] ?? 'field';
  if (field >= 2) {
    return `the PROXY v1 ${name} is not a decimal number from 0 to 65535 without leading zeros`;
  }
  return ipv6
    ? `the PROXY v1 ${name} is not an IPv6 address`
    : `the PROXY v1 ${name} is not an IPv4 dotted quad without leading zeros`;
}

/** `UNKNOWN`, then CRLF or a space and anything but CR and LF up to the CRLF. */
function parseV1Unknown(bytes: Uint8Array, n: number, from: number): ProxyParse {
  let i = from;
  if (i >= n) return bytes.length > n ? tooLong() : INCOMPLETE;
  const next = bytes[i];
  if (next !== SPACE && next !== CR) {
    return invalid('the PROXY v1 protocol UNKNOWN must be followed by a space or CRLF');
  }
  if (next === SPACE) i++;
  for (; i < n; i++) {
    const byte = bytes[i];
    if (byte === CR) {
      if (i + 1 >= n) return i + 1 >= PROXY_V1_MAX_LENGTH ? tooLong() : INCOMPLETE;
      if (bytes[i + 1] !== LF) return invalid('the PROXY v1 line has a CR not followed by LF');
      return complete(i + 2, null, null);
    }
    if (byte === LF) return invalid('the PROXY v1 line ends with a bare LF instead of CRLF');
    // The CRLF still to come must fit.
    if (i + 1 + 2 > PROXY_V1_MAX_LENGTH) return tooLong();
  }
  return bytes.length > n ? tooLong() : INCOMPLETE;
}

function finishV1Tcp(bytes: Uint8Array, ipv6: boolean, starts: number[], length: number): ProxyParse {
  const text = (k: number) => {
    const end = k < 3 ? (starts[k + 1] ?? 0) - 1 : length - 2;
    return String.fromCharCode(...bytes.subarray(starts[k] ?? 0, end));
  };
  const family = ipv6 ? 6 : 4;
  const address = (k: number): string | null => {
    if (!ipv6) return text(k); // a dotted quad without leading zeros is already the canonical text
    const parsed = parseIpv6Address(text(k));
    return parsed === null ? null : ipv6Text(parsed.bytes);
  };
  const source = address(0);
  const destination = address(1);
  // The scanners accept exactly what parseIpv6Address does, so this is only a safety net.
  if (source === null || destination === null) return invalid(fieldReason(source === null ? 0 : 1, ipv6));
  return complete(
    length,
    { address: source, port: Number(text(2)), family },
    { address: destination, port: Number(text(3)), family },
  );
}

function newScanner(kind: 'address' | 'port', ipv6: boolean): FieldScanner {
  if (kind === 'port') return new PortScanner();
  return ipv6 ? new Ipv6Scanner() : new Ipv4Scanner();
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const DOT = 0x2e;
const COLON = 0x3a;

function isDigit(byte: number): boolean {
  return byte >= DIGIT_0 && byte <= DIGIT_9;
}

function isHexDigit(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/** 0 to 65535, no leading zeros. */
class PortScanner implements FieldScanner {
  private digits = 0;
  private value = 0;

  step(byte: number): boolean {
    if (!isDigit(byte) || (this.digits > 0 && this.value === 0)) return false;
    this.value = this.value * 10 + (byte - DIGIT_0);
    this.digits++;
    return this.value <= 65535;
  }

  done(): boolean {
    return this.digits > 0;
  }

  minRemaining(): number {
    return this.digits > 0 ? 0 : 1;
  }
}

/** Decimal octets 0 to 255 without leading zeros, `count` of them separated by dots. */
class OctetsScanner {
  /** Octets finished (followed by a dot). */
  private finished = 0;
  private digits = 0;
  private value = 0;

  constructor(private readonly count: number) {}

  step(byte: number): boolean {
    if (byte === DOT) {
      if (this.digits === 0 || this.finished === this.count - 1) return false;
      this.finished++;
      this.digits = 0;
      this.value = 0;
      return true;
    }
    if (!isDigit(byte) || (this.digits > 0 && this.value === 0)) return false;
    this.value = this.value * 10 + (byte - DIGIT_0);
    this.digits++;
    return this.value <= 255;
  }

  done(): boolean {
    return this.finished === this.count - 1 && this.digits > 0;
  }

  /** The shortest completion: finish this octet with `0`, then `.0` for each one missing. */
  minRemaining(): number {
    return (this.digits === 0 ? 1 : 0) + 2 * (this.count - 1 - this.finished);
  }
}

class Ipv4Scanner extends OctetsScanner implements FieldScanner {
  constructor() {
    super(4);
  }
}

/** Where an Ipv6Scanner is. */
const Ipv6At = {
  Start: 0, // nothing yet
  LeadingColon: 1, // a first `:`, which must be the start of `::`
  AfterColon: 2, // a `:` after a group
  AfterDoubleColon: 3, // `::`
  Group: 4, // inside a hex group
  Dotted: 5, // inside a dotted-quad tail
} as const;
type Ipv6At = (typeof Ipv6At)[keyof typeof Ipv6At];

/**
 * IPv6 text as parseIpv6Address takes it, without scope or prefix: hex groups of 1 to 4 digits,
 * at most one `::` (standing for at least one zero group), and an optional dotted-quad tail that
 * counts as two groups. Every state it accepts can still be completed to a valid address.
 */
class Ipv6Scanner implements FieldScanner {
  private at: Ipv6At = Ipv6At.Start;
  /** Groups finished (followed by `:`). */
  private groups = 0;
  private compressed = false;
  /** Hex digits in the current group. */
  private digits = 0;
  /** The current group read as a decimal octet, or -1 when it cannot start a dotted quad. */
  private octet = -1;
  private tail: OctetsScanner | null = null;

  step(byte: number): boolean {
    switch (this.at) {
      case Ipv6At.Start:
        if (byte === COLON) {
          this.at = Ipv6At.LeadingColon;
          return true;
        }
        return this.startGroup(byte);
      case Ipv6At.LeadingColon:
        if (byte !== COLON) return false;
        this.compressed = true;
        this.at = Ipv6At.AfterDoubleColon;
        return true;
      case Ipv6At.AfterColon:
        if (byte === COLON) {
          if (this.compressed) return false;
          this.compressed = true;
          this.at = Ipv6At.AfterDoubleColon;
          return true;
        }
        return this.startGroup(byte);
      case Ipv6At.AfterDoubleColon:
        return this.startGroup(byte);
      case Ipv6At.Group:
        if (byte === COLON) {
          this.groups++;
          // Another group or `::` must follow, and still fit in 8 groups (7 written beside `::`).
          if (this.groups > (this.compressed ? 6 : 7)) return false;
          this.at = Ipv6At.AfterColon;
          return true;
        }
        if (byte === DOT) {
          // A dotted quad is the last two groups.
          const fits = this.compressed ? this.groups + 2 <= 7 : this.groups === 6;
          if (this.octet < 0 || !fits) return false;
          this.tail = new OctetsScanner(3);
          this.at = Ipv6At.Dotted;
          return true;
        }
        if (!isHexDigit(byte) || this.digits === 4) return false;
        this.digits++;
        this.octet =
          this.octet > 0 && isDigit(byte) && this.octet * 10 + (byte - DIGIT_0) <= 255
            ? this.octet * 10 + (byte - DIGIT_0)
            : -1;
        return true;
      case Ipv6At.Dotted:
        return this.tail?.step(byte) ?? false;
    }
  }

  private startGroup(byte: number): boolean {
    if (!isHexDigit(byte)) return false;
    if (this.groups + 1 > (this.compressed ? 7 : 8)) return false;
    this.at = Ipv6At.Group;
    this.digits = 1;
    this.octet = isDigit(byte) ? byte - DIGIT_0 : -1;
    return true;
  }

  done(): boolean {
    switch (this.at) {
      case Ipv6At.AfterDoubleColon:
        return true;
      case Ipv6At.Group:
        return this.compressed || this.groups + 1 === 8;
      case Ipv6At.Dotted:
        return this.tail?.done() ?? false;
      default:
        return false;
    }
  }

  minRemaining(): number {
    switch (this.at) {
      case Ipv6At.Start:
        return 2; // `::`
      case Ipv6At.LeadingColon:
      case Ipv6At.AfterColon:
        return 1; // `:` or `0`
      case Ipv6At.AfterDoubleColon:
        return 0;
      case Ipv6At.Group:
        return this.done() ? 0 : 2; // `::`
      case Ipv6At.Dotted:
        return this.tail?.minRemaining() ?? 0;
    }
  }
}

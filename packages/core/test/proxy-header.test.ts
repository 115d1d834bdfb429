import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PROXY_V1_MAX_LENGTH,
  type ProxyEndpoint,
  type ProxyParse,
  type ProxyVersion,
  parseProxyHeader,
} from '../src/proxy-header.js';

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function uint16(n: number): number[] {
  return [n >> 8, n & 0xff];
}

/** A v2 header: signature, version/command, family, length (the body's unless given), body. */
function v2({
  command = 1,
  version = 2,
  family = 0x11,
  body = [],
  length,
}: {
  command?: number;
  version?: number;
  family?: number;
  body?: ArrayLike<number>;
  length?: number;
}): Uint8Array {
  return concat(SIGNATURE, [(version << 4) | command, family], uint16(length ?? body.length), body);
}

function v2Ipv4(src: number[], dst: number[], sport: number, dport: number, tlvs: number[] = []) {
  return v2({ family: 0x11, body: [...src, ...dst, ...uint16(sport), ...uint16(dport), ...tlvs] });
}

function v2Ipv6(src: ArrayLike<number>, dst: ArrayLike<number>, sport: number, dport: number) {
  return v2({ family: 0x21, body: concat(src, dst, uint16(sport), uint16(dport)) });
}

/** 16 bytes from 8 groups, so expectations read like the addresses they describe. */
function groups(...g: number[]): Uint8Array {
  return Uint8Array.from(g.flatMap(uint16));
}

/** How Node's `net` prints an IPv6 address: the oracle for canonical text. */
function nodeText(bytes: Uint8Array): string {
  return new SocketAddress({ address: fullText(bytes), family: 'ipv6' }).address;
}

/** `0000:0000:...`: the longest IPv6 text, every group written out. */
function fullText(bytes: Uint8Array): string {
  const out: string[] = [];
  for (let i = 0; i < 16; i += 2)
    out.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16).padStart(4, '0'));
  return out.join(':');
}

function endpoint(address: string, port: number, family: 4 | 6): ProxyEndpoint {
  return { address, port, family };
}

function completeWith(
  length: number,
  source: ProxyEndpoint | null,
  destination: ProxyEndpoint | null,
): ProxyParse {
  return { state: 'complete', length, source, destination };
}

function reasonOf(result: ProxyParse): string {
  if (result.state !== 'invalid') throw new Error(`expected invalid, got ${JSON.stringify(result)}`);
  return result.reason;
}

/** Every proper prefix (including the empty one) of `bytes`. */
function* properPrefixes(bytes: Uint8Array): Generator<Uint8Array> {
  for (let n = 0; n < bytes.length; n++) yield bytes.subarray(0, n);
}

const INCOMPLETE: ProxyParse = { state: 'incomplete' };

describe('PROXY v1: valid lines give their addresses and exact length', () => {
  it('reads the spec example TCP4 line and leaves the HTTP request after it', () => {
    const header = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const bytes = ascii(`${header}GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n`);
    expect(parseProxyHeader(bytes, 'v1')).toEqual(
      completeWith(header.length, endpoint('192.168.0.1', 56324, 4), endpoint('192.168.0.11', 443, 4)),
    );
  });

  it('reads the extremes of TCP4 addresses and ports', () => {
    const header = 'PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n';
    expect(parseProxyHeader(ascii(header), 'v1')).toEqual(
      completeWith(header.length, endpoint('0.0.0.0', 0, 4), endpoint('255.255.255.255', 65535, 4)),
    );
  });

  it('reads TCP6 and prints the addresses in canonical lowercase compressed form', () => {
    const header = 'PROXY TCP6 2001:DB8:0:0:0:0:0:1 0000:0000:0000:0000:0000:0000:0000:0001 4000 80\r\n';
    expect(parseProxyHeader(ascii(header), 'v1')).toEqual(
      completeWith(header.length, endpoint('2001:db8::1', 4000, 6), endpoint('::1', 80, 6)),
    );
  });

  it('reads TCP6 addresses written with :: anywhere and with a dotted-quad tail', () => {
    const header = 'PROXY TCP6 :: 1:2:3:4:5:6:7.8.9.10 1 2\r\n';
    expect(parseProxyHeader(ascii(header), 'v1')).toEqual(
      completeWith(header.length, endpoint('::', 1, 6), endpoint('1:2:3:4:5:6:708:90a', 2, 6)),
    );
  });

  it('keeps an IPv4-mapped TCP6 address as IPv6 text ::ffff:a.b.c.d, however it was written', () => {
    const header = 'PROXY TCP6 ::ffff:1.2.3.4 0:0:0:0:0:FFFF:0A00:0001 1 2\r\n';
    expect(parseProxyHeader(ascii(header), 'v1')).toEqual(
      completeWith(header.length, endpoint('::ffff:1.2.3.4', 1, 6), endpoint('::ffff:10.0.0.1', 2, 6)),
    );
  });

  it('reads the short UNKNOWN line as "use the real addresses"', () => {
    expect(parseProxyHeader(ascii('PROXY UNKNOWN\r\nhello'), 'v1')).toEqual(completeWith(15, null, null));
  });

  it('ignores whatever follows UNKNOWN up to the CRLF', () => {
    const header = 'PROXY UNKNOWN ffff:f::1 whatever-the-sender-put 99999 x\r\n';
    expect(parseProxyHeader(ascii(`${header}data`), 'v1')).toEqual(completeWith(header.length, null, null));
  });

  it('takes the longest lines the spec lists: 56, 104 and 107 bytes', () => {
    const g = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tcp4 = 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n';
    const tcp6 = `PROXY TCP6 ${g} ${g} 65535 65535\r\n`;
    const unknown = `PROXY UNKNOWN ${g} ${g} 65535 65535\r\n`;
    expect([tcp4.length, tcp6.length, unknown.length]).toEqual([56, 104, PROXY_V1_MAX_LENGTH]);
    for (const line of [tcp4, tcp6, unknown]) {
      const result = parseProxyHeader(ascii(`${line}more`), 'v1');
      expect(result.state === 'complete' && result.length).toBe(line.length);
    }
  });

  it('reads a header whose CRLF arrives in the same chunk as the client data', () => {
    const header = ascii('PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n');
    const data = Uint8Array.from({ length: 500 }, (_, i) => i & 0xff);
    const result = parseProxyHeader(concat(header, data), 'v1');
    expect(result.state === 'complete' && result.length).toBe(header.length);
  });
});

describe('PROXY v1: anything else is invalid, with a reason', () => {
  it.each([
    ['lowercase "proxy"', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /PROXY /],
    ['two spaces after PROXY', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /two spaces/],
    ['two spaces between addresses', 'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', /two spaces/],
    ['a tab for a space', 'PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n', /one space/],
    ['an unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /TCP4, TCP6 or UNKNOWN/],
    ['a lowercase protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', /TCP4, TCP6 or UNKNOWN/],
    ['UDP4', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', /TCP4, TCP6 or UNKNOWN/],
    ['a leading zero in an octet', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', /source address/],
    ['an octet over 255', 'PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n', /destination address/],
    ['three octets', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', /source address/],
    ['five octets', 'PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n', /source address/],
    ['an empty octet', 'PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n', /source address/],
    ['an IPv6 address in TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', /source address is not an IPv4/],
    ['an IPv4 address in TCP6', 'PROXY TCP6 ::1 5.6.7.8 1 2\r\n', /destination address is not an IPv6/],
    ['a hostname', 'PROXY TCP4 localhost 5.6.7.8 1 2\r\n', /source address/],
    ['a leading zero in a port', 'PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', /source port/],
    ['a port over 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n', /destination port/],
    ['a signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', /source port/],
    ['a missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /ends after the source port/],
    ['an extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', /goes on after the destination port/],
    ['a space before the CRLF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /goes on after the destination port/],
    ['a bare LF ending', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /bare LF/],
    ['a CR without LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CR not followed by LF/],
    ['TCP4 with no addresses', 'PROXY TCP4\r\n', /followed by one space/],
    ['three colons in an IPv6 address', 'PROXY TCP6 1:::2 ::1 1 2\r\n', /source address/],
    ['two :: in an IPv6 address', 'PROXY TCP6 1::2::3 ::1 1 2\r\n', /source address/],
    ['nine IPv6 groups', 'PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n', /source address/],
    ['a five-digit IPv6 group', 'PROXY TCP6 12345:: ::1 1 2\r\n', /source address/],
    ['an IPv6 zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /source address/],
    ['a bracketed IPv6 address', 'PROXY TCP6 [::1] ::1 1 2\r\n', /source address/],
    ['UNKNOWN run into other text', 'PROXY UNKNOWNX\r\n', /UNKNOWN must be followed/],
    ['a bare LF after UNKNOWN', 'PROXY UNKNOWN\nGET / HTTP/1.1\r\n', /UNKNOWN must be followed/],
    ['a bare LF inside the UNKNOWN line', 'PROXY UNKNOWN x\nGET / HTTP/1.1\r\n', /bare LF/],
  ])('refuses %s', (_name, line, reason) => {
    for (const version of ['v1', 'any'] as const) {
      expect(reasonOf(parseProxyHeader(ascii(line), version))).toMatch(reason);
    }
  });

  it('refuses a line of 108 bytes without CRLF', () => {
    const line = ascii(`PROXY UNKNOWN ${'x'.repeat(94)}`);
    expect(line.length).toBe(108);
    expect(reasonOf(parseProxyHeader(line, 'v1'))).toMatch(/no CRLF within its first 107 bytes/);
  });

  it('refuses a 108-byte line even when its CRLF is the 107th and 108th bytes', () => {
    const line = ascii(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`);
    expect(line.length).toBe(108);
    expect(parseProxyHeader(line, 'v1').state).toBe('invalid');
  });

  it('refuses an over-long line as soon as no CRLF can fit within 107 bytes', () => {
    const base = `PROXY UNKNOWN ${'x'.repeat(91)}`; // 105 bytes: a CRLF still fits
    expect(parseProxyHeader(ascii(base), 'v1')).toEqual(INCOMPLETE);
    expect(parseProxyHeader(ascii(`${base}\r`), 'v1')).toEqual(INCOMPLETE);
    expect(parseProxyHeader(ascii(`${base}x`), 'v1').state).toBe('invalid');
  });

  it('refuses a TCP6 line that cannot fit in 107 bytes before its end arrives', () => {
    const long = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255'; // 45 bytes, a valid address
    const line = `PROXY TCP6 ${long} ${long} 1 2\r\n`; // 108 bytes
    // With the whole destination address read, even ` 0 0\r\n` no longer fits.
    const firstBad = 'PROXY TCP6 '.length + long.length + 1 + long.length;
    expect(parseProxyHeader(ascii(line.slice(0, firstBad - 1)), 'v1')).toEqual(INCOMPLETE);
    expect(reasonOf(parseProxyHeader(ascii(line.slice(0, firstBad)), 'v1'))).toMatch(/107 bytes/);
  });

  it('refuses as early as possible, before the line ends', () => {
    for (const early of [
      'G',
      'PROXX',
      'PROXY TCP4 256',
      'PROXY TCP4 1.2.3.4.',
      'PROXY TCP4 00',
      'PROXY TCP4 1.2.3.4 5.6.7.8 65536',
      'PROXY TCP4 1.2.3.4 5.6.7.8 01',
      'PROXY TCP6 1:2:3:4:5:6:7:8:',
      'PROXY TCP6 ::1.2.3.4.',
      'PROXY TCP6 1:2:3:4:5:6:7:1.',
      'PROXY TCP6 1.',
    ]) {
      expect(parseProxyHeader(ascii(early), 'v1').state, early).toBe('invalid');
    }
  });
});

describe('PROXY v2: valid headers give their addresses and exact length', () => {
  it('reads TCP over IPv4', () => {
    const header = v2Ipv4([192, 168, 0, 1], [10, 0, 0, 2], 56324, 443);
    expect(header.length).toBe(28);
    expect(parseProxyHeader(concat(header, ascii('GET /')), 'v2')).toEqual(
      completeWith(28, endpoint('192.168.0.1', 56324, 4), endpoint('10.0.0.2', 443, 4)),
    );
  });

  it('reads TCP over IPv6 and prints the addresses canonically', () => {
    const header = v2Ipv6(groups(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1), groups(0, 0, 0, 0, 0, 0, 0, 1), 0, 65535);
    expect(header.length).toBe(52);
    expect(parseProxyHeader(header, 'v2')).toEqual(
      completeWith(52, endpoint('2001:db8::1:0:0:1', 0, 6), endpoint('::1', 65535, 6)),
    );
  });

  it('prints an IPv4-mapped address as the IPv6 text ::ffff:a.b.c.d', () => {
    const header = v2Ipv6(
      groups(0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304),
      groups(0, 0, 0, 0, 0, 0, 0, 0),
      1,
      2,
    );
    expect(parseProxyHeader(header, 'v2')).toEqual(
      completeWith(52, endpoint('::ffff:1.2.3.4', 1, 6), endpoint('::', 2, 6)),
    );
  });

  it('prints an IPv4-compatible address with a dotted tail, as Node does', () => {
    const header = v2Ipv6(groups(0, 0, 0, 0, 0, 0, 0x0102, 0x0304), groups(0, 0, 0, 0, 0, 0, 0, 2), 1, 2);
    expect(parseProxyHeader(header, 'v2')).toEqual(
      completeWith(52, endpoint('::1.2.3.4', 1, 6), endpoint('::2', 2, 6)),
    );
  });

  it('reads LOCAL as "use the real addresses", whatever the family byte and the bytes after it', () => {
    for (const family of [0x00, 0x11, 0x21, 0x12, 0x31, 0xff]) {
      const header = v2({ command: 0, family, body: [1, 2, 3, 4, 5, 6, 7] });
      expect(parseProxyHeader(concat(header, [9, 9]), 'v2')).toEqual(completeWith(23, null, null));
    }
  });

  it('reads PROXY with UNSPEC or a UNIX stream as "use the real addresses"', () => {
    expect(parseProxyHeader(v2({ family: 0x00 }), 'v2')).toEqual(completeWith(16, null, null));
    expect(parseProxyHeader(v2({ family: 0x31, body: new Uint8Array(216) }), 'v2')).toEqual(
      completeWith(232, null, null),
    );
  });

  it('skips the TLVs after the addresses without reading them, whatever they hold', () => {
    const tlvs = [
      [0x02, 0x00, 0x03, 0x61, 0x62, 0x63], // AUTHORITY "abc"
      [0x04, 0x00, 0x00], // NOOP
      [0x20, 0xff, 0xff, 0x01], // an SSL TLV claiming far more bytes than there are
      [0xee], // not even a whole TLV
    ].flat();
    const header = v2Ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1000, 2000, tlvs);
    expect(header.length).toBe(28 + tlvs.length);
    expect(parseProxyHeader(concat(header, ascii('data')), 'v2')).toEqual(
      completeWith(header.length, endpoint('1.2.3.4', 1000, 4), endpoint('5.6.7.8', 2000, 4)),
    );
  });

  it('waits for all of a header of the largest length, 16 + 65535 bytes', () => {
    const header = v2({ command: 0, family: 0x00, body: new Uint8Array(65535) });
    expect(parseProxyHeader(header.subarray(0, header.length - 1), 'v2')).toEqual(INCOMPLETE);
    expect(parseProxyHeader(header, 'v2')).toEqual(completeWith(16 + 65535, null, null));
  });
});

describe('PROXY v2: anything else is invalid, with a reason', () => {
  it('refuses a bad signature at the first wrong byte', () => {
    for (let i = 1; i < SIGNATURE.length; i++) {
      const bytes = Uint8Array.from(SIGNATURE.slice(0, i + 1));
      bytes[i] = (bytes[i] ?? 0) ^ 0x40;
      expect(reasonOf(parseProxyHeader(bytes, 'v2'))).toMatch(/signature/);
    }
  });

  it.each([
    ['version 1', v2({ version: 1 }), /version 1, not 2/],
    ['version 3', v2({ version: 3 }), /version 3, not 2/],
    ['command 2', v2({ command: 2 }), /command 2/],
    ['command 15', v2({ command: 15 }), /command 15/],
    ['UDP over IPv4', v2({ family: 0x12, body: new Uint8Array(12) }), /datagram \(UDP\)/],
    ['UDP over IPv6', v2({ family: 0x22, body: new Uint8Array(36) }), /datagram \(UDP\)/],
    ['a UNIX datagram', v2({ family: 0x32, body: new Uint8Array(216) }), /datagram/],
    ['an unknown family', v2({ family: 0x41, body: new Uint8Array(12) }), /unknown family .* 0x41/],
    ['an unknown protocol', v2({ family: 0x13, body: new Uint8Array(12) }), /unknown family .* 0x13/],
    ['AF_INET with no protocol', v2({ family: 0x10, body: new Uint8Array(12) }), /0x10/],
    ['a length too short for IPv4', v2({ family: 0x11, body: new Uint8Array(11) }), /length 11 .* IPv4/],
    ['a length too short for IPv6', v2({ family: 0x21, body: new Uint8Array(35) }), /length 35 .* IPv6/],
    ['a length too short for UNIX', v2({ family: 0x31, body: new Uint8Array(215) }), /length 215 .* UNIX/],
  ])('refuses %s', (_name, bytes, reason) => {
    for (const version of ['v2', 'any'] as const) {
      expect(reasonOf(parseProxyHeader(bytes, version))).toMatch(reason);
    }
  });

  it('refuses as soon as the byte that breaks the header arrives', () => {
    expect(parseProxyHeader(v2({ version: 1 }).subarray(0, 13), 'v2').state).toBe('invalid');
    expect(parseProxyHeader(v2({ command: 2 }).subarray(0, 13), 'v2').state).toBe('invalid');
    expect(parseProxyHeader(v2({ family: 0x12 }).subarray(0, 14), 'v2').state).toBe('invalid');
    expect(parseProxyHeader(v2({ family: 0x21, length: 35 }).subarray(0, 16), 'v2').state).toBe('invalid');
  });
});

describe('choosing the version', () => {
  const v1Line = ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n');
  const v2Header = v2Ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);

  it('takes nothing yet as a prefix of any header', () => {
    for (const version of ['v1', 'v2', 'any'] as const) {
      expect(parseProxyHeader(new Uint8Array(0), version)).toEqual(INCOMPLETE);
    }
  });

  it('with any, reads both versions', () => {
    expect(parseProxyHeader(v1Line, 'any').state).toBe('complete');
    expect(parseProxyHeader(v2Header, 'any').state).toBe('complete');
  });

  it('with v1, refuses a v2 header on its first byte, naming v2', () => {
    expect(reasonOf(parseProxyHeader(v2Header.subarray(0, 1), 'v1'))).toMatch(/v2 header, but only v1/);
    expect(reasonOf(parseProxyHeader(v2Header, 'v1'))).toMatch(/v2 header, but only v1/);
  });

  it('with v2, refuses a v1 line on its first byte, naming v1', () => {
    expect(reasonOf(parseProxyHeader(v1Line.subarray(0, 1), 'v2'))).toMatch(/v1 header, but only v2/);
    expect(reasonOf(parseProxyHeader(v1Line, 'v2'))).toMatch(/v1 header, but only v2/);
  });

  it('refuses other protocols on their first byte: HTTP, TLS, SSH, a bare CRLF', () => {
    for (const first of [ascii('G'), Uint8Array.of(0x16, 0x03, 0x01), ascii('SSH-2.0'), ascii('\r\nX')]) {
      for (const version of ['v1', 'v2', 'any'] as const) {
        expect(reasonOf(parseProxyHeader(first, version))).toMatch(/no PROXY protocol/);
      }
    }
  });

  it('gives invalid rather than throwing when misused from JavaScript', () => {
    expect(parseProxyHeader('PROXY' as unknown as Uint8Array, 'v1').state).toBe('invalid');
    expect(parseProxyHeader(v1Line, 'v3' as ProxyVersion).state).toBe('invalid');
  });
});

describe('truncated valid headers', () => {
  const headers: Array<[string, Uint8Array]> = [
    ['v1 TCP4', ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n')],
    ['v1 TCP6', ascii('PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 65535 0\r\n')],
    ['v1 UNKNOWN', ascii('PROXY UNKNOWN\r\n')],
    ['v1 UNKNOWN with text', ascii('PROXY UNKNOWN a b c\r\n')],
    ['v2 IPv4', v2Ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, [4, 0, 1, 0])],
    ['v2 IPv6', v2Ipv6(groups(1, 2, 3, 4, 5, 6, 7, 8), groups(0, 0, 0, 0, 0, 0, 0, 1), 1, 2)],
    ['v2 LOCAL', v2({ command: 0, family: 0 })],
    ['v2 UNIX', v2({ family: 0x31, body: new Uint8Array(216) })],
  ];

  it.each(headers)('%s: every prefix is incomplete, never invalid or complete', (_name, header) => {
    const version = header[0] === 0x50 ? 'v1' : ('v2' as const);
    for (const prefix of properPrefixes(header)) {
      expect(parseProxyHeader(prefix, version), `${prefix.length} bytes`).toEqual(INCOMPLETE);
      expect(parseProxyHeader(prefix, 'any'), `${prefix.length} bytes`).toEqual(INCOMPLETE);
    }
    expect(parseProxyHeader(header, version).state).toBe('complete');
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

/** 8 groups, often zero (so `::` and mapped forms come up) and often 0xffff. */
const ipv6Bytes = fc
  .oneof(
    fc.array(fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), {
      minLength: 8,
      maxLength: 8,
    }),
    fc
      .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }))
      .map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]),
  )
  .map((g) => groups(...g));

const ipv4Bytes = fc.array(fc.oneof(fc.constant(0), fc.constant(255), fc.integer({ min: 0, max: 255 })), {
  minLength: 4,
  maxLength: 4,
});

const port = fc.oneof(fc.constant(0), fc.constant(65535), fc.integer({ min: 0, max: 65535 }));

/** The ways a v1 line may write an IPv6 address. */
function ipv6Writings(bytes: Uint8Array, upper: boolean): string[] {
  const full = fullText(bytes);
  const short = full.replace(/(^|:)0{1,3}(?=[0-9a-f])/g, '$1');
  const head = full.split(':').slice(0, 6).join(':');
  const dotted = `${head}:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const all = [full, short, nodeText(bytes), dotted];
  return upper ? all.map((t) => t.toUpperCase()) : all;
}

interface Generated {
  header: Uint8Array;
  version: 'v1' | 'v2';
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
}

const v1Tcp4 = fc.tuple(ipv4Bytes, ipv4Bytes, port, port).map(([s, d, sp, dp]): Generated => {
  const source = endpoint(s.join('.'), sp, 4);
  const destination = endpoint(d.join('.'), dp, 4);
  const header = ascii(`PROXY TCP4 ${source.address} ${destination.address} ${sp} ${dp}\r\n`);
  return { header, version: 'v1', source, destination };
});

const v1Tcp6 = fc
  .tuple(ipv6Bytes, ipv6Bytes, port, port, fc.nat(3), fc.nat(3), fc.boolean())
  .map(([s, d, sp, dp, sw, dw, upper]): Generated => {
    const srcText = ipv6Writings(s, upper)[sw] ?? '';
    const dstText = ipv6Writings(d, upper)[dw] ?? '';
    return {
      header: ascii(`PROXY TCP6 ${srcText} ${dstText} ${sp} ${dp}\r\n`),
      version: 'v1',
      source: endpoint(nodeText(s), sp, 6),
      destination: endpoint(nodeText(d), dp, 6),
    };
  })
  .filter((g) => g.header.length <= PROXY_V1_MAX_LENGTH); // two dotted-tail writings may not fit

const v1Unknown = fc
  .string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 92 })
  .chain((rest) => fc.constantFrom('PROXY UNKNOWN\r\n', `PROXY UNKNOWN ${rest}\r\n`))
  .map((line): Generated => ({ header: ascii(line), version: 'v1', source: null, destination: null }));

const tlvBytes = fc.uint8Array({ maxLength: 40 });

const v2Tcp4 = fc.tuple(ipv4Bytes, ipv4Bytes, port, port, tlvBytes).map(
  ([s, d, sp, dp, tlvs]): Generated => ({
    header: v2Ipv4(s, d, sp, dp, [...tlvs]),
    version: 'v2',
    source: endpoint(s.join('.'), sp, 4),
    destination: endpoint(d.join('.'), dp, 4),
  }),
);

const v2Tcp6 = fc.tuple(ipv6Bytes, ipv6Bytes, port, port, tlvBytes).map(
  ([s, d, sp, dp, tlvs]): Generated => ({
    header: v2({ family: 0x21, body: concat(s, d, uint16(sp), uint16(dp), tlvs) }),
    version: 'v2',
    source: endpoint(nodeText(s), sp, 6),
    destination: endpoint(nodeText(d), dp, 6),
  }),
);

const v2Null = fc
  .oneof(
    fc.tuple(fc.constant(0), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 })),
    fc.tuple(fc.constant(1), fc.constant(0x00), fc.uint8Array({ maxLength: 40 })),
    fc.tuple(fc.constant(1), fc.constant(0x31), fc.uint8Array({ minLength: 216, maxLength: 260 })),
  )
  .map(
    ([command, family, body]): Generated => ({
      header: v2({ command, family, body }),
      version: 'v2',
      source: null,
      destination: null,
    }),
  );

const validHeader = fc.oneof(v1Tcp4, v1Tcp6, v1Unknown, v2Tcp4, v2Tcp6, v2Null);

/** Random bytes, often starting like a header so that the deeper states are reached. */
const hostileBytes = fc
  .tuple(
    fc.constantFrom(
      '',
      'PROXY ',
      'PROXY TCP4 ',
      'PROXY TCP6 ',
      'PROXY UNKNOWN',
      'PROXY TCP4 1.2.3.4 ',
      'PROXY TCP6 ::1 ',
      '\r\n\r\n\0\r\nQUIT\n',
      '\r\n\r\n\0\r\nQUIT\n!\x11',
      '\r\n\r\n\0\r\nQUIT\n!\x21',
      '\r\n\r\n\0\r\nQUIT\n \x00',
    ),
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc
        .array(fc.constantFrom(...'0123456789abcdefABCDEF:. \r\n'), { maxLength: 120 })
        .map((chars) => ascii(chars.join(''))),
    ),
  )
  .map(([start, rest]) => concat(ascii(start), rest));

const versions = fc.constantFrom<ProxyVersion>('v1', 'v2', 'any');

describe('properties', () => {
  it('(a) any valid header made from random addresses and ports gives them back, and its length', () => {
    fc.assert(
      fc.property(validHeader, fc.boolean(), (g, any) => {
        expect(parseProxyHeader(g.header, any ? 'any' : g.version)).toEqual(
          completeWith(g.header.length, g.source, g.destination),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('(b) split anywhere, every prefix of a valid header is incomplete and the whole is complete', () => {
    fc.assert(
      fc.property(validHeader, (g) => {
        for (const prefix of properPrefixes(g.header)) {
          expect(parseProxyHeader(prefix, g.version)).toEqual(INCOMPLETE);
          expect(parseProxyHeader(prefix, 'any')).toEqual(INCOMPLETE);
        }
        expect(parseProxyHeader(g.header, g.version).state).toBe('complete');
      }),
      { numRuns: 200 },
    );
  });

  it('(c) random bytes never throw, and a complete header never claims more bytes than there are', () => {
    fc.assert(
      fc.property(hostileBytes, versions, (bytes, version) => {
        const result = parseProxyHeader(bytes, version);
        if (result.state === 'complete') expect(result.length).toBeLessThanOrEqual(bytes.length);
        if (result.state === 'invalid') expect(result.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('(c) a verdict on a prefix stands: invalid stays invalid and complete stays the same as more arrives', () => {
    fc.assert(
      fc.property(hostileBytes, versions, (bytes, version) => {
        let settled: ProxyParse | null = null;
        for (let n = 0; n <= bytes.length; n++) {
          const result = parseProxyHeader(bytes.subarray(0, n), version);
          if (settled === null) {
            if (result.state !== 'incomplete') settled = result;
          } else if (settled.state === 'complete') {
            expect(result).toEqual(settled);
          } else {
            expect(result.state).toBe('invalid');
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('(d) a valid header followed by random bytes gives the same result as the header alone', () => {
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: 300 }), versions, (g, suffix, version) => {
        expect(parseProxyHeader(concat(g.header, suffix), version)).toEqual(
          parseProxyHeader(g.header, version),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('prints any v2 IPv6 address exactly as Node prints it', () => {
    fc.assert(
      fc.property(ipv6Bytes, (bytes) => {
        const result = parseProxyHeader(v2Ipv6(bytes, bytes, 1, 2), 'v2');
        expect(result.state === 'complete' && result.source?.address).toBe(nodeText(bytes));
      }),
      { numRuns: 1000 },
    );
  });
});

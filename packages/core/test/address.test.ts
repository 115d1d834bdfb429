import { describe, expect, it } from 'vitest';
import {
  fromSocketAddress,
  Ipv6Address,
  integerToIpv4,
  ipAddressString,
  ipv4ToInteger,
  ipv6AddressString,
  isIpv4Literal,
  isIpv6Literal,
  parseIpv6Address,
  stringIpAddress,
  toLiteral,
} from '../src/address.js';

/** Bytes from 8 groups, so expectations read like the addresses they describe. */
function fromGroups(...groups: number[]): Uint8Array {
  const bytes = new Uint8Array(16);
  for (const [i, g] of groups.entries()) {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  }
  return bytes;
}

function groupsOf(a: Ipv6Address): number[] {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a.bytes[i] ?? 0) << 8) | (a.bytes[i + 1] ?? 0));
  return groups;
}

function mustParse(text: string): Ipv6Address {
  const a = parseIpv6Address(text);
  if (a === null) throw new Error(`expected ${text} to parse`);
  return a;
}

describe('IPv4 integers', () => {
  it('reads the LispWorks example in network order', () => {
    expect(ipv4ToInteger('204.71.177.75')).toBe(0xcc47b14b);
  });

  it('prints the LispWorks example', () => {
    expect(integerToIpv4(0xcc47b14b)).toBe('204.71.177.75');
  });

  it.each([
    ['0.0.0.0', 0],
    ['127.0.0.1', 0x7f000001],
    ['255.255.255.255', 0xffffffff],
    ['10.0.0.255', 0x0a0000ff],
    ['128.0.0.0', 0x80000000],
  ])('round-trips %s', (text, n) => {
    expect(ipv4ToInteger(text)).toBe(n);
    expect(integerToIpv4(n)).toBe(text);
  });

  it('gives non-negative numbers when the top bit is set', () => {
    const n = ipv4ToInteger('255.0.0.1');
    expect(n).toBe(4278190081);
    expect(n).toBeGreaterThan(0);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.256',
    '1.2.3.999',
    '1.2.3.1000',
    '+1.2.3.4',
    '1.+2.3.4',
    '-1.2.3.4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.4\n',
    '1. 2.3.4',
    '1..3.4',
    '1.2.3.',
    '.1.2.3',
    '01.2.3.4',
    '1.2.3.04',
    '0x1.2.3.4',
    '1.2.3.4a',
    'a.b.c.d',
    '1e1.2.3.4',
    '١.٢.٣.٤',
    '::1',
    'localhost',
  ])('rejects %j', (text) => {
    expect(ipv4ToInteger(text)).toBeNull();
  });

  it.each([-1, 0x100000000, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'integerToIpv4 refuses %s with a TypeError naming it',
    (n) => {
      expect(() => integerToIpv4(n)).toThrow(TypeError);
      expect(() => integerToIpv4(n)).toThrow(String(n));
    },
  );

  it('integerToIpv4 refuses a string', () => {
    expect(() => integerToIpv4('1' as unknown as number)).toThrow(TypeError);
  });
});

describe('Ipv6Address', () => {
  it('keeps bytes, scope and prefix', () => {
    const a = new Ipv6Address(fromGroups(0xfe80, 0, 0, 0, 0, 0, 0, 1), 'eth0', 64);
    expect(groupsOf(a)).toEqual([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    expect(a.scopeId).toBe('eth0');
    expect(a.prefixLength).toBe(64);
  });

  it('defaults scope and prefix to null', () => {
    const a = new Ipv6Address(new Uint8Array(16));
    expect(a.scopeId).toBeNull();
    expect(a.prefixLength).toBeNull();
  });

  it.each([0, 4, 15, 17, 32])('refuses %i bytes with a TypeError', (n) => {
    expect(() => new Ipv6Address(new Uint8Array(n))).toThrow(TypeError);
  });

  it('refuses a plain array', () => {
    expect(() => new Ipv6Address(new Array(16).fill(0) as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('refuses a bad prefix length or scope', () => {
    expect(() => new Ipv6Address(new Uint8Array(16), null, 129)).toThrow(TypeError);
    expect(() => new Ipv6Address(new Uint8Array(16), null, -1)).toThrow(TypeError);
    expect(() => new Ipv6Address(new Uint8Array(16), null, 1.5)).toThrow(TypeError);
    expect(() => new Ipv6Address(new Uint8Array(16), '')).toThrow(TypeError);
    expect(() => new Ipv6Address(new Uint8Array(16), 'a%b')).toThrow(TypeError);
  });

  it('copies the bytes so later changes to the buffer do not leak in', () => {
    const buffer = fromGroups(0, 0, 0, 0, 0, 0, 0, 1);
    const a = new Ipv6Address(buffer);
    buffer[15] = 2;
    expect(a.toString()).toBe('::1');
  });

  it('toString is the canonical text', () => {
    expect(new Ipv6Address(fromGroups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), '3').toString()).toBe(
      '2001:db8::1%3',
    );
  });

  it('equals compares bytes and scope but not prefix', () => {
    const a = mustParse('fe80::1%eth0/64');
    expect(a.equals(mustParse('FE80:0:0:0:0:0:0:1%eth0'))).toBe(true);
    expect(a.equals(mustParse('fe80::1%eth1'))).toBe(false);
    expect(a.equals(mustParse('fe80::1'))).toBe(false);
    expect(a.equals(mustParse('fe80::2%eth0'))).toBe(false);
  });

  it('recognises IPv4-mapped addresses', () => {
    const mapped = mustParse('::ffff:204.71.177.75');
    expect(mapped.isIpv4Mapped()).toBe(true);
    expect(mapped.toIpv4()).toBe(0xcc47b14b);
    expect(mustParse('::ffff:c0a8:101').toIpv4()).toBe(ipv4ToInteger('192.168.1.1'));
  });

  it.each([
    '::1',
    '::',
    '::1.2.3.4',
    '::fffe:1.2.3.4',
    '1::ffff:1.2.3.4',
    '64:ff9b::1.2.3.4',
    '::ffff:0:1.2.3.4',
  ])('%s is not IPv4-mapped', (text) => {
    const a = mustParse(text);
    expect(a.isIpv4Mapped()).toBe(false);
    expect(a.toIpv4()).toBeNull();
  });
});

describe('parseIpv6Address', () => {
  it.each<[string, number[]]>([
    ['::', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['::1', [0, 0, 0, 0, 0, 0, 0, 1]],
    ['1::', [1, 0, 0, 0, 0, 0, 0, 0]],
    ['0:0:0:0:0:0:0:0', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', [0x2001, 0xdb8, 0, 0, 0, 0xff00, 0x42, 0x8329]],
    ['2001:db8::ff00:42:8329', [0x2001, 0xdb8, 0, 0, 0, 0xff00, 0x42, 0x8329]],
    ['2001:DB8::FF00:42:8329', [0x2001, 0xdb8, 0, 0, 0, 0xff00, 0x42, 0x8329]],
    ['2001:Db8::fF00:42:8329', [0x2001, 0xdb8, 0, 0, 0, 0xff00, 0x42, 0x8329]],
    ['fe80::1', [0xfe80, 0, 0, 0, 0, 0, 0, 1]],
    ['1:2:3:4:5:6:7:8', [1, 2, 3, 4, 5, 6, 7, 8]],
    ['1:2:3:4:5:6:7::', [1, 2, 3, 4, 5, 6, 7, 0]],
    ['::2:3:4:5:6:7:8', [0, 2, 3, 4, 5, 6, 7, 8]],
    ['1::8', [1, 0, 0, 0, 0, 0, 0, 8]],
    ['1:2::7:8', [1, 2, 0, 0, 0, 0, 7, 8]],
    [
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff],
    ],
    ['0001:02:003:0004::', [1, 2, 3, 4, 0, 0, 0, 0]],
    ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]],
    ['::FFFF:204.71.177.75', [0, 0, 0, 0, 0, 0xffff, 0xcc47, 0xb14b]],
    ['64:ff9b::192.0.2.33', [0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221]],
    ['::1.2.3.4', [0, 0, 0, 0, 0, 0, 0x0102, 0x0304]],
    ['1:2:3:4:5:6:1.2.3.4', [1, 2, 3, 4, 5, 6, 0x0102, 0x0304]],
    ['1:2:3:4:5::1.2.3.4', [1, 2, 3, 4, 5, 0, 0x0102, 0x0304]],
    ['[::1]', [0, 0, 0, 0, 0, 0, 0, 1]],
    ['[2001:db8::1]', [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]],
  ])('parses %s', (text, groups) => {
    const a = mustParse(text);
    expect(groupsOf(a)).toEqual(groups);
    expect(a.scopeId).toBeNull();
    expect(a.prefixLength).toBeNull();
  });

  it.each<[string, string | null, number | null]>([
    ['fe80::1%eth0', 'eth0', null],
    ['fe80::1%2', '2', null],
    ['fe80::1%en0/64', 'en0', 64],
    ['2001:db8::/32', null, 32],
    ['::/0', null, 0],
    ['::1/128', null, 128],
    ['[fe80::1%eth0]', 'eth0', null],
    ['::ffff:1.2.3.4%lo/96', 'lo', 96],
    ['fe80::1%br-1a2b.100', 'br-1a2b.100', null],
  ])('parses the scope and prefix of %s', (text, scope, prefix) => {
    const a = mustParse(text);
    expect(a.scopeId).toBe(scope);
    expect(a.prefixLength).toBe(prefix);
  });

  it('the prefix does not change the address', () => {
    expect(groupsOf(mustParse('2001:db8::1/32'))).toEqual(groupsOf(mustParse('2001:db8::1')));
  });

  it.each([
    '',
    ':',
    ':::',
    '::::',
    '1:::2',
    '1::2::3',
    '::1::',
    ':1::2',
    '1::2:',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4::5:6:7:8',
    '12345::',
    '::12345',
    '00000::1',
    'g::1',
    '::fffg',
    '1:2:3:4:5:6:7:8g',
    '0x1::',
    '::ffff:256.1.2.3',
    '::ffff:1.2.3',
    '::ffff:1.2.3.4.5',
    '::ffff:01.2.3.4',
    '::ffff:x1.2.3.4',
    '::ffff:1.2.3.4x',
    '::1.2.3.4:1',
    '1.2.3.4::',
    '1.2.3.4::1',
    '1:2:3:4:5:6:7:1.2.3.4',
    '1:2:3:4:5:6:7::1.2.3.4',
    '1.2.3.4',
    '127.0.0.1',
    'localhost',
    'fe80::1%',
    'fe80::1%eth0%1',
    'fe80::1% eth0',
    '::1/',
    '::1/129',
    '::1/-1',
    '::1/+1',
    '::1/064',
    '::1/1a',
    '::1/64/64',
    '::1/64%eth0',
    ' ::1',
    '::1 ',
    ':: 1',
    '[::1',
    '::1]',
    '[[::1]]',
    '[]',
    '::١',
  ])('rejects %j', (text) => {
    expect(parseIpv6Address(text)).toBeNull();
  });

  it('returns null rather than throwing for a non-string', () => {
    expect(parseIpv6Address(undefined as unknown as string)).toBeNull();
    expect(parseIpv6Address(1 as unknown as string)).toBeNull();
  });
});

describe('ipv6AddressString (RFC 5952)', () => {
  it.each([
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    // 4.1: no leading zeros; 4.3: lowercase
    ['2001:0DB8:0000:0000:0000:FF00:0042:8329', '2001:db8::ff00:42:8329'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    // 4.2.2: a single zero group is not compressed
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // 4.2.3: the longest run wins, and the first of equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['0:0:1:0:0:0:0:0', '0:0:1::'],
    ['0:0:1:2:3:4:0:0', '::1:2:3:4:0:0'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
    ['0:2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:0:0', '1:2:3:4:5:6::'],
    ['fe80:0000:0000:0000:0202:b3ff:fe1e:8329', 'fe80::202:b3ff:fe1e:8329'],
    // 5: mapped addresses keep the dotted tail, other embeddings are plain hex
    ['::ffff:c0a8:0101', '::ffff:192.168.1.1'],
    ['0:0:0:0:0:FFFF:204.71.177.75', '::ffff:204.71.177.75'],
    ['::ffff:0.0.0.0', '::ffff:0.0.0.0'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    // scope is printed, prefix is not
    ['FE80::0001%eth0', 'fe80::1%eth0'],
    ['fe80::1%2/64', 'fe80::1%2'],
    ['[::ffff:127.0.0.1%lo]', '::ffff:127.0.0.1%lo'],
    ['2001:db8::/32', '2001:db8::'],
  ])('%s -> %s', (input, canonical) => {
    expect(ipv6AddressString(mustParse(input))).toBe(canonical);
  });

  it('round-trips every 8-group pattern of zero and non-zero groups', () => {
    for (let mask = 0; mask < 256; mask++) {
      const groups = Array.from({ length: 8 }, (_, i) => ((mask >> i) & 1 ? 0xa0 + i : 0));
      const a = new Ipv6Address(fromGroups(...groups));
      const text = ipv6AddressString(a);
      const back = mustParse(text);
      expect(back.equals(a)).toBe(true);
      // Canonical text is a fixed point, and never longer than the uncompressed form.
      expect(ipv6AddressString(back)).toBe(text);
      expect(text.length).toBeLessThanOrEqual(groups.map((g) => g.toString(16)).join(':').length);
      expect(text.split('::').length).toBeLessThanOrEqual(2);
    }
  });

  it('round-trips with a scope', () => {
    const a = mustParse('fe80::a:b%wlan0');
    expect(mustParse(ipv6AddressString(a)).equals(a)).toBe(true);
  });
});

describe('ipAddressString and stringIpAddress', () => {
  it('prints an integer as a dotted quad', () => {
    expect(ipAddressString(0xcc47b14b)).toBe('204.71.177.75');
    expect(ipAddressString(0)).toBe('0.0.0.0');
  });

  it('prints an Ipv6Address canonically', () => {
    expect(ipAddressString(mustParse('0:0::1'))).toBe('::1');
  });

  it.each([
    ['-1', -1],
    ['4294967296', 0x100000000],
    ['2.5', 2.5],
    ['"1.2.3.4"', '1.2.3.4'],
    ['null', null],
    ['undefined', undefined],
    ['7n', 7n],
    ['[object Object]', {}],
  ])('refuses %s with a TypeError naming it', (shown, value) => {
    const call = () => ipAddressString(value as unknown as number);
    expect(call).toThrow(TypeError);
    expect(call).toThrow(shown);
  });

  it('refuses an object that cannot be turned into a string, still with a TypeError', () => {
    expect(() => ipAddressString(Object.create(null) as number)).toThrow(TypeError);
  });

  it('parses a dotted quad to an integer', () => {
    expect(stringIpAddress('204.71.177.75')).toBe(0xcc47b14b);
  });

  it('parses IPv6 text to an Ipv6Address', () => {
    const a = stringIpAddress('fe80::1%eth0');
    expect(a).toBeInstanceOf(Ipv6Address);
    expect(String(a)).toBe('fe80::1%eth0');
  });

  it.each(['', 'localhost', '1.2.3', '256.0.0.1', ':::', 'example.com'])('gives null for %j', (text) => {
    expect(stringIpAddress(text)).toBeNull();
  });

  it('round-trips both families', () => {
    for (const text of ['10.1.2.3', '::1', '2001:db8::8:800:200c:417a', '::ffff:10.0.0.1', 'fe80::1%7']) {
      const a = stringIpAddress(text);
      if (a === null) throw new Error(`expected ${text} to parse`);
      expect(ipAddressString(a)).toBe(text);
    }
  });
});

describe('literal predicates', () => {
  it.each([
    ['127.0.0.1', true, false],
    ['0.0.0.0', true, false],
    ['::1', false, true],
    ['[::1]', false, true],
    ['fe80::1%eth0', false, true],
    ['::ffff:127.0.0.1', false, true],
    ['2001:db8::/32', false, false],
    ['localhost', false, false],
    ['', false, false],
    ['1.2.3.4.5', false, false],
    [':::', false, false],
  ])('%j: IPv4 %s, IPv6 %s', (text, v4, v6) => {
    expect(isIpv4Literal(text)).toBe(v4);
    expect(isIpv6Literal(text)).toBe(v6);
  });
});

describe('fromSocketAddress', () => {
  it('turns an IPv4 report into an integer', () => {
    expect(fromSocketAddress('127.0.0.1', 4)).toBe(0x7f000001);
  });

  it('turns an IPv6 report into an Ipv6Address', () => {
    const a = fromSocketAddress('::1', 6);
    expect(a).toBeInstanceOf(Ipv6Address);
    expect(String(a)).toBe('::1');
  });

  it('keeps the zone of a link-local peer', () => {
    const a = fromSocketAddress('fe80::1%eth0', 6);
    expect(a).toBeInstanceOf(Ipv6Address);
    expect((a as Ipv6Address).scopeId).toBe('eth0');
  });

  it('keeps a mapped address as IPv6 on an IPv6 socket', () => {
    const a = fromSocketAddress('::ffff:127.0.0.1', 6);
    expect(a).toBeInstanceOf(Ipv6Address);
    expect((a as Ipv6Address).toIpv4()).toBe(0x7f000001);
    expect(String(a)).toBe('::ffff:127.0.0.1');
  });

  it('unwraps a mapped address reported for an IPv4 socket', () => {
    expect(fromSocketAddress('::ffff:127.0.0.1', 4)).toBe(0x7f000001);
  });

  it('canonicalises what the runtime wrote', () => {
    expect(String(fromSocketAddress('2001:DB8:0:0:0:0:0:1', 6))).toBe('2001:db8::1');
  });

  it.each(['', 'localhost', '::1/64', '1.2.3.256'])('throws a TypeError naming %j', (text) => {
    expect(() => fromSocketAddress(text, 6)).toThrow(TypeError);
    expect(() => fromSocketAddress(text, 6)).toThrow(JSON.stringify(text));
  });
});

describe('toLiteral', () => {
  it('gives a dotted quad for an integer', () => {
    expect(toLiteral(0xcc47b14b)).toBe('204.71.177.75');
  });

  it('gives IPv6 text with the scope, without brackets or prefix', () => {
    const literal = toLiteral(mustParse('[FE80::1%eth0]'));
    expect(literal).toBe('fe80::1%eth0');
    expect(toLiteral(mustParse('2001:db8::1/64'))).toBe('2001:db8::1');
  });

  it('gives a mapped address in the form a dual-stack socket accepts', () => {
    expect(toLiteral(mustParse('::ffff:7f00:1'))).toBe('::ffff:127.0.0.1');
  });

  it('round-trips through fromSocketAddress', () => {
    for (const [text, family] of [
      ['192.0.2.1', 4],
      ['::', 6],
      ['fe80::1%3', 6],
      ['::ffff:192.0.2.1', 6],
    ] as const) {
      expect(toLiteral(fromSocketAddress(text, family))).toBe(text);
    }
  });

  it('refuses a non-address with a TypeError', () => {
    expect(() => toLiteral(-5)).toThrow(TypeError);
  });
});

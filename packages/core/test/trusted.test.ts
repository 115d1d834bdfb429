import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LOOPBACK_SOURCES, trustedSources } from '../src/trusted.js';

function ipv4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

function ipv6Text(n: bigint): string {
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(((n >> shift) & 0xffffn).toString(16));
  return groups.join(':');
}

describe('the default', () => {
  const loopback = trustedSources(LOOPBACK_SOURCES);

  it('is 127.0.0.0/8 and ::1, and cannot be changed', () => {
    expect(LOOPBACK_SOURCES).toEqual(['127.0.0.0/8', '::1']);
    expect(Object.isFrozen(LOOPBACK_SOURCES)).toBe(true);
  });

  it.each(['127.0.0.1', '127.0.0.0', '127.255.255.255', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1'])(
    'trusts loopback %s',
    (address) => {
      expect(loopback(address)).toBe(true);
    },
  );

  it.each(['128.0.0.1', '126.255.255.255', '10.0.0.1', '0.0.0.0', '::', '::2', '::ffff:10.0.0.1', 'fe80::1'])(
    'does not trust %s',
    (address) => {
      expect(loopback(address)).toBe(false);
    },
  );
});

describe('CIDR blocks', () => {
  it('takes in exactly the addresses of an IPv4 block, edges included', () => {
    const trusted = trustedSources(['10.0.0.0/8', '192.168.1.0/24']);
    for (const inside of ['10.0.0.0', '10.255.255.255', '10.1.2.3', '192.168.1.0', '192.168.1.255']) {
      expect(trusted(inside), inside).toBe(true);
    }
    for (const outside of ['9.255.255.255', '11.0.0.0', '192.168.0.255', '192.168.2.0']) {
      expect(trusted(outside), outside).toBe(false);
    }
  });

  it('takes in exactly the addresses of an IPv6 block, at any prefix length', () => {
    const trusted = trustedSources(['fd00::/8', '2001:db8:8000::/33', '2001:db8:1::/127']);
    expect(trusted('fd12:3456::1')).toBe(true);
    expect(trusted('fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(trusted('fe00::1')).toBe(false);
    expect(trusted('2001:db8:8000::1')).toBe(true);
    expect(trusted('2001:db8:ffff::1')).toBe(true);
    expect(trusted('2001:db8:7fff::1')).toBe(false);
    expect(trusted('2001:db8:1::1')).toBe(true);
    expect(trusted('2001:db8:1::2')).toBe(false);
  });

  it('trusts everyone of a family with /0, and only that family', () => {
    const v4 = trustedSources(['0.0.0.0/0']);
    const v6 = trustedSources(['::/0']);
    expect(v4('203.0.113.9')).toBe(true);
    expect(v4('2001:db8::1')).toBe(false);
    expect(v6('2001:db8::1')).toBe(true);
    expect(v6('203.0.113.9')).toBe(false);
  });

  it('accepts a block with host bits set, masking them off', () => {
    const trusted = trustedSources(['10.1.2.3/8', 'fd00::1/8']);
    expect(trusted('10.9.9.9')).toBe(true);
    expect(trusted('fd99::9')).toBe(true);
    expect(trusted('11.1.2.3')).toBe(false);
  });

  it('matches any IPv4 block as the arithmetic of its prefix says', () => {
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    fc.assert(
      fc.property(u32, fc.integer({ min: 0, max: 32 }), u32, (network, prefix, peer) => {
        const expected = prefix === 0 || (network ^ peer) >>> (32 - prefix) === 0;
        const trusted = trustedSources([`${ipv4Text(network)}/${prefix}`]);
        expect(trusted(ipv4Text(peer))).toBe(expected);
        expect(trusted(`::ffff:${ipv4Text(peer)}`)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('matches any IPv6 block as the arithmetic of its prefix says', () => {
    const u128 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
    fc.assert(
      fc.property(u128, fc.integer({ min: 0, max: 128 }), u128, fc.nat(128), (network, prefix, far, flip) => {
        // A peer near the network (one bit flipped) as well as one anywhere.
        const near = network ^ (1n << BigInt(flip % 128));
        const trusted = trustedSources([`${ipv6Text(network)}/${prefix}`]);
        // Mapped peers are IPv4 peers, tested above.
        for (const peer of [near, far].filter((p) => p >> 32n !== 0xffffn)) {
          expect(trusted(ipv6Text(peer))).toBe((network ^ peer) >> BigInt(128 - prefix) === 0n);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('single addresses', () => {
  it('trusts exactly that address', () => {
    const trusted = trustedSources(['192.168.1.7', '::1', '2001:db8::42']);
    expect(trusted('192.168.1.7')).toBe(true);
    expect(trusted('192.168.1.8')).toBe(false);
    expect(trusted('::1')).toBe(true);
    expect(trusted('2001:db8::42')).toBe(true);
    expect(trusted('2001:DB8:0:0:0:0:0:42')).toBe(true);
    expect(trusted('2001:db8::43')).toBe(false);
  });

  it('trusts no one with an empty list', () => {
    const trusted = trustedSources([]);
    expect(trusted('127.0.0.1')).toBe(false);
    expect(trusted('::1')).toBe(false);
  });

  it('keeps its answers when the list it was built from changes later', () => {
    const list = ['10.0.0.1'];
    const trusted = trustedSources(list);
    list[0] = '10.0.0.2';
    expect(trusted('10.0.0.1')).toBe(true);
    expect(trusted('10.0.0.2')).toBe(false);
  });
});

describe('IPv4-mapped peers', () => {
  it('match IPv4 blocks as their IPv4 address, in dotted or hex form', () => {
    const trusted = trustedSources(['10.0.0.0/8']);
    expect(trusted('::ffff:10.1.2.3')).toBe(true);
    expect(trusted('::ffff:a01:203')).toBe(true);
    expect(trusted('0:0:0:0:0:FFFF:10.1.2.3')).toBe(true);
    expect(trusted('::ffff:11.1.2.3')).toBe(false);
  });

  it('an IPv4-mapped entry is the IPv4 block it maps', () => {
    const trusted = trustedSources(['::ffff:10.0.0.0/104', '::ffff:192.168.1.7']);
    expect(trusted('10.1.2.3')).toBe(true);
    expect(trusted('::ffff:10.1.2.3')).toBe(true);
    expect(trusted('192.168.1.7')).toBe(true);
    expect(trusted('11.0.0.0')).toBe(false);
  });

  it('an IPv6 block that only covers the mapped range from outside does not take IPv4 peers in', () => {
    const trusted = trustedSources(['::/8']);
    expect(trusted('::ffff:10.1.2.3')).toBe(false);
    expect(trusted('::1')).toBe(true);
  });

  it('an IPv4-compatible address (::a.b.c.d) is not an IPv4 peer', () => {
    expect(trustedSources(['10.0.0.0/8'])('::10.1.2.3')).toBe(false);
  });
});

describe('zone ids', () => {
  it('are ignored when matching', () => {
    const trusted = trustedSources(['fe80::/10', '::1']);
    expect(trusted('fe80::1%eth0')).toBe(true);
    expect(trusted('fe80::1%2')).toBe(true);
    expect(trusted('::1%lo')).toBe(true);
    expect(trusted('fec0::1%eth0')).toBe(false);
  });

  it('an empty zone is no address', () => {
    expect(trustedSources(['fe80::/10'])('fe80::1%')).toBe(false);
  });
});

describe('bad entries', () => {
  it('throw a TypeError naming the entry', () => {
    expect(() => trustedSources(['127.0.0.1', '10.0.0.0/33'])).toThrow(
      new TypeError('trustedProxies: "10.0.0.0/33" is not an address or CIDR block'),
    );
  });

  it.each([
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/',
    '/8',
    '10.0.0.0/08',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0',
    '010.0.0.0/8',
    '256.0.0.0/8',
    'localhost',
    '',
    ' 10.0.0.1',
    '10.0.0.1 ',
    '1:::2',
    '[::1]',
    'fe80::1%eth0',
    '*',
  ])('%j is refused', (entry) => {
    expect(() => trustedSources([entry])).toThrow(TypeError);
    expect(() => trustedSources([entry])).toThrow(`trustedProxies: ${JSON.stringify(entry)} is not`);
  });

  it('a non-string entry is refused by what it is', () => {
    expect(() => trustedSources([42 as unknown as string])).toThrow(
      'trustedProxies: 42 is not an address or CIDR block',
    );
  });

  it('a list that is not an array is refused', () => {
    expect(() => trustedSources('10.0.0.0/8' as unknown as string[])).toThrow(TypeError);
  });
});

describe('the predicate', () => {
  it('says false rather than throwing for text that is no peer address', () => {
    const trusted = trustedSources(['0.0.0.0/0', '::/0']);
    for (const text of [
      '',
      'localhost',
      '10.0.0.1/32',
      '::1/128',
      '[::1]',
      '%eth0',
      '1.2.3.4%eth0',
      'x::1',
    ]) {
      expect(trusted(text), text).toBe(false);
    }
    expect(trusted(undefined as unknown as string)).toBe(false);
  });
});

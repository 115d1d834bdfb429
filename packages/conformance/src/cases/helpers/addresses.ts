/**
 * The helpers of the address cases (R3, R5-R8, R18): the contract's address functions as the
 * backend module re-exports them, the addresses the cases expect, and a server that greets.
 */
import assert from 'node:assert/strict';
import type * as Core from '@comm/core/backend';
import type { SocketStream } from '@comm/core/backend';
import type { CaseContext } from '../../suite.js';

/** The address helpers of the contract, as the backend module re-exports them. */
export type AddressApi = Pick<
  typeof Core,
  'Ipv6Address' | 'parseIpv6Address' | 'ipv6AddressString' | 'ipAddressString' | 'stringIpAddress'
>;

/** The backend module's address helpers; fails the case if one is not exported. */
export function addressApi(t: CaseContext): AddressApi {
  for (const name of [
    'Ipv6Address',
    'parseIpv6Address',
    'ipv6AddressString',
    'ipAddressString',
    'stringIpAddress',
  ])
    assert.equal(typeof t.api[name], 'function', `the backend module exports ${name}`);
  return t.api as unknown as AddressApi;
}

/** The options of a server that greets each client with `hello` and hangs up. */
export const helloServer = {
  createStream: true,
  function: async (stream: SocketStream) => {
    await stream.writeLine('hello');
    await stream.close();
  },
} as const;

/** The 16 bytes of the IPv6 address whose eight 16-bit groups are `words`. */
export function groups(...words: number[]): number[] {
  assert.equal(words.length, 8);
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** `::`, the IPv6 any-address, as bytes. */
export const ANY6 = groups(0, 0, 0, 0, 0, 0, 0, 0);
/** `::1` as bytes. */
export const LOOPBACK6 = groups(0, 0, 0, 0, 0, 0, 0, 1);
/** `::ffff:127.0.0.1`, 127.0.0.1 as an IPv6 socket sees it, as bytes. */
export const MAPPED_LOOPBACK4 = groups(0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001);
/** 127.0.0.1 as the integer the address functions give. */
export const LOOPBACK4 = 0x7f000001;

/** `value` is an `Ipv6Address` holding exactly `bytes`. */
export function assertIpv6(t: CaseContext, value: unknown, bytes: number[], what: string): void {
  const { Ipv6Address } = addressApi(t);
  assert.ok(value instanceof Ipv6Address, `${what} is an Ipv6Address, not ${String(value)}`);
  assert.deepEqual([...value.bytes], bytes, what);
}

import { lookup } from 'node:dns/promises';
import { Ipv6Address, integerToIpv4, isIpv4Literal, parseIpv6Address, toLiteral } from './address.js';
import { StartupCondition } from './conditions.js';
import { getServiceEntry } from './services.js';
import type { AddressSpec, Ipv6Mode, Service } from './validate.js';

/** R5: the port a service names. */
export function resolveService(service: Service, where = 'service'): number {
  if (service === null) return 0;
  if (typeof service === 'number') return service;
  if (/^\d+$/.test(service)) {
    const port = Number(service);
    if (port <= 65535) return port;
    throw new StartupCondition(`${where} "${service}" is not a port: ports run from 0 to 65535`, {
      code: 'EINVAL',
    });
  }
  const entry = getServiceEntry(service, 'tcp');
  if (!entry)
    throw new StartupCondition(
      `unknown service "${service}": it is not a tcp service in /etc/services; pass a port number instead (service: 10243), or null for any free port`,
      { code: 'ENOTFOUND' },
    );
  return entry.port;
}

export interface Endpoint {
  readonly host: string;
  readonly family: 4 | 6;
}

function mapped(ipv4: string): string {
  return `::ffff:${ipv4}`;
}

/**
 * R6-R8: the IP literals an address stands for under an `ipv6` mode, in the order to try them.
 * `loopback` is what no address means for the built-in listener.
 */
export async function resolveEndpoints(
  address: AddressSpec,
  ipv6: Ipv6Mode,
  none: 'any' | 'loopback',
): Promise<Endpoint[]> {
  if (address === null) {
    if (ipv6 === true || ipv6 === 'both') return [{ host: none === 'any' ? '::' : '::1', family: 6 }];
    return [{ host: none === 'any' ? '0.0.0.0' : '127.0.0.1', family: 4 }];
  }
  let literal: Endpoint | null = null;
  if (typeof address === 'number') literal = { host: integerToIpv4(address), family: 4 };
  else if (address instanceof Ipv6Address) literal = { host: toLiteral(address), family: 6 };
  else if (isIpv4Literal(address)) literal = { host: address, family: 4 };
  else {
    const v6 = parseIpv6Address(address);
    if (v6) literal = { host: toLiteral(v6), family: 6 };
  }
  if (literal) {
    if (literal.family === 6 && ipv6 === false)
      throw new StartupCondition(`address ${literal.host} is IPv6, but ipv6 is false (IPv4 only)`, {
        code: 'EINVAL',
      });
    if (literal.family === 4 && ipv6 === true)
      throw new StartupCondition(`address ${literal.host} is IPv4, but ipv6 is true (IPv6 only)`, {
        code: 'EINVAL',
      });
    if (literal.family === 4 && ipv6 === 'both') return [{ host: mapped(literal.host), family: 6 }];
    return [literal];
  }
  const name = address as string;
  let found: Array<{ address: string; family: number }>;
  try {
    found = await lookup(name, { all: true, order: 'ipv4first' });
  } catch (error) {
    throw new StartupCondition(`cannot resolve host name "${name}": ${(error as Error).message}`, {
      code: 'ENOTFOUND',
      cause: error,
    });
  }
  const v4 = found.filter((a) => a.family === 4).map((a) => ({ host: a.address, family: 4 as const }));
  const v6 = found.filter((a) => a.family === 6).map((a) => ({ host: a.address, family: 6 as const }));
  const chosen =
    ipv6 === false
      ? v4
      : ipv6 === true
        ? v6
        : ipv6 === 'both'
          ? [...v6, ...v4.map((a) => ({ host: mapped(a.host), family: 6 as const }))]
          : [...v4, ...v6];
  if (chosen.length === 0) {
    const kind = ipv6 === false ? 'IPv4' : 'IPv6';
    throw new StartupCondition(`host name "${name}" has no ${kind} address (ipv6 is ${String(ipv6)})`, {
      code: 'ENOTFOUND',
    });
  }
  return chosen;
}

export function isLoopback(host: string): boolean {
  const bare = host.split('%')[0] as string;
  return bare.startsWith('127.') || bare === '::1' || bare.startsWith('::ffff:127.');
}

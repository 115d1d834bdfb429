/**
 * LispWorks' `get-service-entry`, read straight from /etc/services: there is no
 * getservbyname that Node, Bun and Deno all offer, and the file format is simple and stable.
 */
import { readFileSync } from 'node:fs';
import { describe } from './describe.js';

export interface ServiceEntry {
  readonly name: string;
  readonly port: number;
  readonly protocol: string;
  readonly aliases: readonly string[];
}

const PORT_PROTOCOL = /^(\d{1,5})\/(\S+)$/;

/**
 * Parses /etc/services text: `name  port/protocol  alias...  # comment`. Lines that do not
 * fit are skipped, as the C library does, so one odd line does not hide the rest of the file.
 */
export function parseServices(text: string): ServiceEntry[] {
  const entries: ServiceEntry[] = [];
  // trim() below also drops the CR of a CRLF line end.
  for (const line of text.split('\n')) {
    const hash = line.indexOf('#');
    const fields = (hash >= 0 ? line.slice(0, hash) : line).trim().split(/\s+/);
    const [name, portProtocol, ...aliases] = fields;
    if (name === undefined || name === '' || portProtocol === undefined) continue;
    const match = PORT_PROTOCOL.exec(portProtocol);
    if (match === null) continue;
    const port = Number(match[1]);
    if (port > 65535) continue;
    entries.push({ name, port, protocol: match[2] ?? '', aliases });
  }
  return entries;
}

/**
 * The first entry for `service` (a name or alias, case-sensitive like getservbyname, or a port
 * number) and `protocol`, or null when there is none or the file cannot be read. The file is
 * read on each call: lookups are rare, and an edited file should be seen at once.
 */
export function getServiceEntry(
  service: string | number,
  protocol = 'tcp',
  file = '/etc/services',
): ServiceEntry | null {
  const byName = typeof service === 'string';
  if (!byName && !(typeof service === 'number' && Number.isInteger(service))) {
    throw new TypeError(`service must be a name or an integer port, got ${describe(service)}`);
  }
  if (typeof protocol !== 'string') {
    throw new TypeError(`protocol must be a string, got ${describe(protocol)}`);
  }

  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No services file is an ordinary "not found" for the caller, as with getservbyname.
    return null;
  }

  const matches = byName
    ? (e: ServiceEntry) => e.name === service || e.aliases.includes(service)
    : (e: ServiceEntry) => e.port === service;
  return parseServices(text).find((e) => e.protocol === protocol && matches(e)) ?? null;
}

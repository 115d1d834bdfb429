// The checks every entry point makes of its options: each names the entry point and the option,
// and says what it was given. No module here imports another that imports it back.
import { Ipv6Address } from './address.js';
import { describe } from './describe.js';

export { describe };

export type Ipv6Mode = 'any' | 'both' | boolean;
export type Service = number | string | null;
export type AddressSpec = string | number | Ipv6Address | null;
export type Direction = 'input' | 'output' | 'io';
/** Lisp's element types; every stream is bivalent, so this records intent and nothing more. */
export type ElementType = 'base-char' | 'character' | 'unsigned-byte';

/** How a `SocketStream` reads and writes: what `createStream` and `openTcpStream` take too. */
export interface StreamOptions {
  direction?: Direction;
  elementType?: ElementType;
  /** Seconds without input after which a read sees end of file; null (the default) waits for ever. */
  readTimeout?: number | null;
  /** Seconds a write may take to be taken by the peer before it fails; null (the default) waits for ever. */
  writeTimeout?: number | null;
  /** The longest line `readLine` accepts, in bytes (1 MiB by default). */
  lineLimit?: number;
}

export const DEFAULT_LINE_LIMIT = 1024 * 1024;

/** Stream options after defaults and validation. */
export interface StreamSettings {
  readonly direction: Direction;
  readonly elementType: ElementType;
  readonly readTimeout: number | null;
  readonly writeTimeout: number | null;
  readonly lineLimit: number;
}

export function checkBoolean(where: string, option: string, value: unknown): void {
  if (typeof value !== 'boolean')
    throw new TypeError(`${where}: option "${option}" must be a boolean, not ${describe(value)}`);
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
}

export function checkService(where: string, option: string, value: unknown): void {
  if (value === null || typeof value === 'string') {
    if (value === '') throw new TypeError(`${where}: option "${option}" must not be an empty string`);
    return;
  }
  if (!isPort(value))
    throw new TypeError(
      `${where}: option "${option}" must be a port number (0-65535), a service name or null, not ${describe(value)}`,
    );
}

export function checkAddress(where: string, option: string, value: unknown): void {
  if (value === null || value instanceof Ipv6Address) return;
  if (typeof value === 'string') {
    if (value === '') throw new TypeError(`${where}: option "${option}" must not be an empty string`);
    return;
  }
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return;
  throw new TypeError(
    `${where}: option "${option}" must be an IP address string, a host name, an IPv4 integer (0-0xFFFFFFFF), an Ipv6Address or null, not ${describe(value)}`,
  );
}

export function checkIpv6(where: string, value: unknown): void {
  if (value !== 'any' && value !== 'both' && typeof value !== 'boolean')
    throw new TypeError(
      `${where}: option "ipv6" must be 'any', 'both', true or false, not ${describe(value)}`,
    );
}

export function checkKnown(where: string, options: object, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(options))
    if (!allowed.has(key))
      throw new TypeError(`${where}: unknown option "${key}"; known options are ${[...allowed].join(', ')}`);
}

/** A positive number of seconds, or null (given as null or left out). */
export function checkSeconds(where: string, option: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw new TypeError(
      `${where}: option "${option}" must be a positive number of seconds or null, not ${describe(value)}`,
    );
  return value;
}

/** Validates the stream options in `o` (named with `prefix`, as in "createStream.lineLimit") and applies their defaults. */
export function checkStreamOptions(where: string, o: StreamOptions, prefix = ''): StreamSettings {
  const direction = o.direction ?? 'io';
  if (direction !== 'input' && direction !== 'output' && direction !== 'io')
    throw new TypeError(
      `${where}: option "${prefix}direction" must be 'input', 'output' or 'io', not ${describe(direction)}`,
    );
  const elementType = o.elementType ?? 'base-char';
  if (elementType !== 'base-char' && elementType !== 'character' && elementType !== 'unsigned-byte')
    throw new TypeError(
      `${where}: option "${prefix}elementType" must be 'base-char', 'character' or 'unsigned-byte', not ${describe(elementType)}`,
    );
  const lineLimit = o.lineLimit ?? DEFAULT_LINE_LIMIT;
  if (!Number.isInteger(lineLimit) || lineLimit <= 0)
    throw new TypeError(
      `${where}: option "${prefix}lineLimit" must be a positive integer, not ${describe(lineLimit)}`,
    );
  return {
    direction,
    elementType,
    readTimeout: checkSeconds(where, `${prefix}readTimeout`, o.readTimeout),
    writeTimeout: checkSeconds(where, `${prefix}writeTimeout`, o.writeTimeout),
    lineLimit,
  };
}

export const streamOptionNames = new Set([
  'direction',
  'elementType',
  'readTimeout',
  'writeTimeout',
  'lineLimit',
]);

/** Picks one value of a synonym pair (`service`/`localPort`), refusing two different ones. */
export function synonym<T>(
  where: string,
  options: Record<string, unknown>,
  a: string,
  b: string,
  fallback: T,
  same: (x: unknown, y: unknown) => boolean = Object.is,
): T {
  const hasA = options[a] !== undefined;
  const hasB = options[b] !== undefined;
  if (hasA && hasB && !same(options[a], options[b]))
    throw new TypeError(
      `${where}: options "${a}" and "${b}" are synonyms and were given different values (${describe(options[a])} and ${describe(options[b])})`,
    );
  if (hasA) return options[a] as T;
  if (hasB) return options[b] as T;
  return fallback;
}

/**
 * Names a bad argument in an error message ("not a function", "not \"80x\""), without letting
 * the message itself throw: the one way every check in core says what it was given.
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return `a Uint8Array of length ${value.length}`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

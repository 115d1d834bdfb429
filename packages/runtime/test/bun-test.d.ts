// The part of Bun's test runner these tests use, so that tsc checks them without Bun's types.
declare module 'bun:test' {
  export function it(name: string, fn: () => Promise<void>, timeoutMs?: number): void;
  export function expect(value: unknown): { toEqual(expected: unknown): void };
}

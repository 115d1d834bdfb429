/** The part of `bun:test` these tests use, declared so that `tsc` typechecks them without bun-types. */
declare module 'bun:test' {
  type TestFn = () => unknown;
  interface Test {
    (name: string, fn: TestFn, timeoutMs?: number): void;
    skip(name: string, fn: TestFn, timeoutMs?: number): void;
  }
  export const it: Test;
  export const test: Test;
  export function describe(name: string, fn: () => void): void;
  export function afterEach(fn: () => unknown): void;
  export function afterAll(fn: () => unknown): void;

  interface Matchers {
    readonly not: Matchers;
    readonly rejects: AsyncMatchers;
    readonly resolves: AsyncMatchers;
    toBe(expected: unknown): void;
    toEqual(expected: unknown): void;
    toBeNull(): void;
    toMatch(pattern: RegExp | string): void;
    toContain(item: unknown): void;
    toBeTruthy(): void;
    toBeGreaterThan(n: number): void;
    toBeLessThan(n: number): void;
    toBeGreaterThanOrEqual(n: number): void;
    toBeLessThanOrEqual(n: number): void;
    toMatchObject(expected: object): void;
    toBeInstanceOf(cls: abstract new (...args: never[]) => unknown): void;
    toThrow(expected?: RegExp | string): void;
  }
  type AsyncMatchers = {
    [K in keyof Matchers]: Matchers[K] extends (...a: infer A) => void ? (...a: A) => Promise<void> : never;
  };
  export function expect(actual: unknown): Matchers;
}

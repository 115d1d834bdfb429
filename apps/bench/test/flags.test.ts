import { afterEach, describe, expect, it, vi } from 'vitest';
import { type FlagSpec, parseFlags, positive, positiveFlag } from '../src/flags.js';

// The flag parser the bench's commands share, without a child process: process.exit throws here.
const usage = 'usage: test [options]\n  --a N\n  --b N\n  --quick\n  --help, -h';
const spec: FlagSpec = { usage, valued: ['a', 'b'], booleans: ['quick'] };

class Exit extends Error {
  constructor(readonly code: number | undefined) {
    super(`exit ${code}`);
  }
}

/** What parsing `argv` printed and the exit code it asked for, or what it returned. */
function parse(argv: string[], given: FlagSpec = spec) {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((text: string) => void out.push(text));
  vi.spyOn(console, 'error').mockImplementation((text: string) => void err.push(text));
  vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exit(code as number | undefined);
  });
  const run = () => parseFlags(argv, given);
  try {
    return { result: run(), code: null, out: out.join('\n'), err: err.join('\n') };
  } catch (e) {
    if (!(e instanceof Exit)) throw e;
    return { result: null, code: e.code, out: out.join('\n'), err: err.join('\n') };
  }
}

afterEach(() => vi.restoreAllMocks());

describe('parseFlags', () => {
  it('an unknown flag: one line naming it, then the usage, on stderr; exit 2', () => {
    const { code, out, err } = parse(['--a', '1', '--colour', 'blue']);
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toBe(`unknown argument "--colour"\n\n${usage}`);
    expect(parse(['a=1']).err.split('\n')[0]).toBe('unknown argument "a=1"');
    expect(parse(['--quick=1']).err.split('\n')[0]).toBe('unknown argument "--quick=1"');
    expect(parse(['--help=1']).err.split('\n')[0]).toBe('unknown argument "--help=1"');
  });

  it('--help and -h print the usage on stdout and exit 0, whatever comes after', () => {
    for (const flag of ['--help', '-h']) {
      const { code, out, err } = parse(['--a', '1', flag, '--colour']);
      expect(code).toBe(0);
      expect(out).toBe(usage);
      expect(err).toBe('');
    }
  });

  it('--a=1 and --a 1 alike; the last one given wins; -- is skipped; booleans', () => {
    expect(parse(['--a=1']).result?.values).toEqual(new Map([['a', '1']]));
    expect(parse(['--a', '1']).result?.values).toEqual(new Map([['a', '1']]));
    expect(parse(['--a=x=y', '--b=']).result?.values).toEqual(
      new Map([
        ['a', 'x=y'],
        ['b', ''],
      ]),
    );
    expect(parse(['--', '--a', '1', '--a', '2']).result?.values.get('a')).toBe('2');
    expect(parse(['--a', '--quick']).result?.values.get('a')).toBe('--quick');
    const { result } = parse(['--quick', '--b', '3']);
    expect(result?.booleans).toEqual(new Set(['quick']));
    expect(result?.values).toEqual(new Map([['b', '3']]));
    expect(parse([]).result).toEqual({ values: new Map(), booleans: new Set() });
  });

  it('a flag without its value: exit 2, naming it', () => {
    const { code, err } = parse(['--b', '2', '--a']);
    expect(code).toBe(2);
    expect(err).toBe(`--a needs a value\n\n${usage}`);
  });

  it('check sees each value as it is read, before what follows', () => {
    const seen: string[] = [];
    const check = (flag: string, value: string) => {
      seen.push(`${flag}=${value}`);
      positive(usage, flag, value, 'digits');
    };
    const { code, err } = parse(['--a', '1', '--b=0', '--help'], { ...spec, check });
    expect(code).toBe(2);
    expect(err.split('\n')[0]).toBe('--b must be a positive integer, not "0"');
    expect(seen).toEqual(['--a=1', '--b=0']);
  });
});

describe('positive numbers', () => {
  function read(text: string, kind: 'number' | 'integer' | 'digits') {
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Exit(code as number | undefined);
    });
    try {
      return positive(usage, '--n', text, kind);
    } catch (e) {
      if (!(e instanceof Exit)) throw e;
      return `${e.code}: ${String(error.mock.calls[0]?.[0]).split('\n')[0]}`;
    } finally {
      vi.restoreAllMocks();
    }
  }

  it('number: any finite one above 0', () => {
    expect(read('0.5', 'number')).toBe(0.5);
    expect(read('1e3', 'number')).toBe(1000);
    expect(read('0', 'number')).toBe('2: --n must be a positive number, not "0"');
    expect(read('abc', 'number')).toBe('2: --n must be a positive number, not "abc"');
    expect(read('Infinity', 'number')).toBe('2: --n must be a positive number, not "Infinity"');
  });

  it('integer: a whole one; digits: decimal digits only', () => {
    expect(read('7', 'integer')).toBe(7);
    expect(read('1e3', 'integer')).toBe(1000);
    expect(read('1.5', 'integer')).toBe('2: --n must be a positive integer, not "1.5"');
    expect(read('-3', 'integer')).toBe('2: --n must be a positive integer, not "-3"');
    expect(read('007', 'digits')).toBe(7);
    expect(read('1e3', 'digits')).toBe('2: --n must be a positive integer, not "1e3"');
    expect(read('0', 'digits')).toBe('2: --n must be a positive integer, not "0"');
  });

  it('positiveFlag: the fallback when not given, the flag named when wrong', () => {
    expect(positiveFlag(usage, new Map(), 'rounds', 3, 'integer')).toBe(3);
    expect(positiveFlag(usage, new Map([['rounds', '5']]), 'rounds', 3, 'integer')).toBe(5);
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Exit(code as number | undefined);
    });
    expect(() => positiveFlag(usage, new Map([['rounds', 'x']]), 'rounds', 3, 'integer')).toThrow('exit 2');
    expect(error.mock.calls[0]?.[0]).toBe(`--rounds must be a positive integer, not "x"\n\n${usage}`);
  });
});

import { describe, expect, test } from 'vitest';
import { calledNames } from '../src/api.js';
import { extractBlocks, parseAnnotation } from '../src/blocks.js';
import { commandLines, words } from '../src/shell.js';

describe('extracting blocks', () => {
  test('a block keeps the annotation right before it, and one without has none', () => {
    const text = [
      '# x',
      '<!-- example: run -->',
      '',
      '```ts',
      'console.log(1);',
      '```',
      '',
      'text',
      '```sh',
      'npm test',
      '```',
      '- item',
      '  <!-- example: not run — an',
      '  output sample -->',
      '  ```',
      '  talk server: 2 workers',
      '  ```',
    ].join('\n');
    const blocks = extractBlocks('README.md', text);
    expect(blocks.map((b) => [b.line, b.lang, b.annotationText, b.code])).toEqual([
      [4, 'ts', 'run', 'console.log(1);\n'],
      [9, 'sh', null, 'npm test\n'],
      [15, '', 'not run — an output sample', 'talk server: 2 workers\n'],
    ]);
  });

  test('an annotation that is not the last thing before the fence does not count', () => {
    const blocks = extractBlocks('README.md', '<!-- example: run -->\nsome text\n```ts\nx\n```\n');
    expect(blocks[0]?.annotationText).toBe(null);
  });
});

describe('annotations', () => {
  test('kinds, runtimes and steps', () => {
    expect(parseAnnotation('not run — it needs a browser', 'README.md')).toEqual({
      kind: 'not-run',
      reason: 'it needs a browser',
    });
    expect(parseAnnotation('compile-only - needs cert.pem', 'packages/bun/README.md')).toEqual({
      kind: 'compile-only',
      reason: 'needs cert.pem',
      runtimes: ['bun'],
    });
    expect(
      parseAnnotation(
        `server; send "a; b"; expect "You sent: 'a; b'"; send-long 10; expect eof`,
        'packages/deno/README.md',
      ),
    ).toEqual({
      kind: 'server',
      runtimes: ['deno'],
      denoFlags: ['-A'],
      steps: [
        { do: 'send', line: 'a; b' },
        { do: 'expect', line: "You sent: 'a; b'" },
        { do: 'send-long', bytes: 10 },
        { do: 'expect-eof' },
      ],
    });
    expect(parseAnnotation('run in node, bun; prints "x \\"y\\""', 'README.md')).toEqual({
      kind: 'run',
      runtimes: ['node', 'bun'],
      denoFlags: ['-A'],
      steps: [{ do: 'prints', line: 'x "y"' }],
    });
    expect(parseAnnotation('config nginxConfig(DIR, 10243, 10244)', 'README.md')).toEqual({
      kind: 'config',
      fn: 'nginxConfig',
      args: ['DIR', 10243, 10244],
    });
  });

  test('mistakes are refused, saying what is wrong', () => {
    expect(() => parseAnnotation('not run', 'README.md')).toThrow(/needs its reason/);
    expect(() => parseAnnotation('compile-only', 'README.md')).toThrow(/needs its reason/);
    expect(() => parseAnnotation('serve', 'README.md')).toThrow(/unknown kind/);
    expect(() => parseAnnotation('server; expect hello', 'README.md')).toThrow(/double-quoted/);
    expect(() => parseAnnotation('server in lisp', 'README.md')).toThrow(/unknown runtime/);
    expect(() => parseAnnotation('run; send "x"', 'README.md')).toThrow(/cannot have the step/);
  });
});

describe('shell blocks and listings', () => {
  test('command lines', () => {
    expect(
      commandLines('pnpm a   # comment\ncomm-conformance --backend x \\\n  --only R1\n\n$ npm test\n'),
    ).toEqual(['pnpm a', 'comm-conformance --backend x --only R1', 'npm test']);
    expect(words(`python3 a.py probe PORT 0 '{}' [--only R16]`)).toEqual([
      'python3',
      'a.py',
      'probe',
      'PORT',
      '0',
      '{}',
      '--only',
      'R16',
    ]);
  });

  test('the names a listing calls', () => {
    expect(
      calledNames(
        'startUpServer(options?): ServerProcess  // wait: f(x)\nnew SocketStream({ socket, direction? })\ngetA(s) / getB(s): [a, b]',
      ),
    ).toEqual(['startUpServer', 'SocketStream', 'getA', 'getB']);
  });
});

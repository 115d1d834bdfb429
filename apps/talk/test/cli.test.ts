import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type Child, scriptCommand, startChild } from '../dist/children.js';
import { Cleanup, transcript } from './helpers.js';

// The talk commands' manners: --help, unknown arguments, and the runtimes found from the app's own
// installation, wherever it is started from.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const children: Child[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.stop('SIGKILL')));
});

/**
 * A child whose `exited` waits for its output too (its stdout and stderr closed, not only its
 * exit), so that what it wrote last is there.
 */
function track(child: Child): Child {
  children.push(child);
  const closed = new Promise<void>((resolve) => child.process.once('close', () => resolve()));
  const exited = child.exited.then(async (code) => {
    await closed;
    return code;
  });
  return Object.assign(Object.create(child) as Child, { exited });
}

/** One of the app's scripts, started in `cwd` (the test's own by default). */
function run(script: string, args: readonly string[], cwd?: string): Child {
  return track(startChild(...scriptCommand(script, args), cwd === undefined ? {} : { cwd }));
}

const commands = ['server.js', 'client.js', 'demo.js', 'first-cost.js', 'third-example.js'];

/** The flags a usage text lists: each `--name` at the start of one of its lines. */
function listedFlags(usage: string): string[] {
  return [...usage.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1] as string);
}

/** The other apps' commands, built beside this one (the root's `npm test` builds them all first). */
const siblings = [
  'talk-web/dist/main.js',
  'bench/dist/cli.js',
  'bench/dist/uws-scale.js',
  'bench/dist/profile.js',
  'hostile/dist/cli.js',
];

describe("the other apps' commands", () => {
  for (const script of siblings)
    it(`${script}: --help and -h print the usage on stdout and exit 0; an unknown argument is refused in one line, exit code 2`, async () => {
      const path = fileURLToPath(new URL(`../../${script}`, import.meta.url));
      if (!existsSync(path)) throw new Error(`${path} is not built: run pnpm build`);
      for (const flag of ['--help', '-h']) {
        const child = track(startChild(process.execPath, [path, flag]));
        expect(await child.exited, child.errors()).toBe(0);
        expect(child.output()).toMatch(/^usage: /);
        expect(child.output()).toContain('--help, -h');
        expect(child.errors()).toBe('');
      }
      const child = track(startChild(process.execPath, [path, '--colour', 'blue']));
      expect(await child.exited).toBe(2);
      expect(child.errors().split('\n')[0]).toMatch(/^(\w+: )?unknown argument "--colour"$/);
      expect(child.output()).toBe('');
    }, 20_000);
});

describe('the talk commands', () => {
  for (const script of commands)
    for (const flag of ['--help', '-h'])
      it(`${script} ${flag} prints its usage on stdout and exits 0, doing nothing else`, async () => {
        const child = run(script, [flag]);
        expect(await child.exited, child.errors()).toBe(0);
        expect(child.output()).toMatch(/^usage: /);
        expect(child.output()).toContain('--help, -h');
        expect(child.errors()).toBe('');
      }, 15_000);

  for (const script of commands)
    it(`${script} refuses an unknown argument in one line (then its usage on stderr), exit code 2`, async () => {
      const child = run(script, ['--colour', 'blue']);
      expect(await child.exited).toBe(2);
      expect(child.errors().split('\n')[0]).toBe('unknown argument "--colour"');
      expect(child.errors()).toMatch(/^usage: /m);
      expect(child.output()).toBe('');
    }, 15_000);

  it('--help wins over everything else on the line: the server with --workers and --backend bun starts nothing', async () => {
    const plain = run('server.js', ['--help']);
    const child = run('server.js', ['--backend', 'bun', '--workers', '2', '--service', '0', '--help']);
    expect(await plain.exited).toBe(0);
    expect(await child.exited).toBe(0);
    expect(child.output()).toMatch(/^usage: talk-server/);
    expect(child.output()).toBe(plain.output());
    expect(child.errors()).toBe('');
  }, 15_000);

  for (const script of ['server.js', 'client.js'])
    it(`every flag ${script}'s usage lists, one a line, is one its parser accepts`, async () => {
      const help = run(script, ['--help']);
      expect(await help.exited).toBe(0);
      const flags = listedFlags(help.output()).filter((flag) => flag !== '--help');
      expect(flags.length).toBeGreaterThan(script === 'server.js' ? 15 : 4);
      // Each flag with a value, then an unknown one: a flag the parser did not know would be the one named.
      const refused = await Promise.all(
        flags.map(async (flag) => {
          const child = run(script, [flag, '1', '--colour']);
          await child.exited;
          return child.errors().split('\n')[0];
        }),
      );
      expect(refused).toEqual(
        flags.map((flag) =>
          // A flag without a value takes `1` for an argument of its own.
          [
            '--keepalive',
            '--no-nodelay',
            '--no-announce',
            '--verbose',
            '--log-sessions',
            '--reuseport',
            '--tls',
          ].includes(flag)
            ? 'unknown argument "1"'
            : 'unknown argument "--colour"',
        ),
      );
    }, 30_000);

  it('--drain takes a number of seconds, 0 or more', async () => {
    for (const [value, exit] of [
      ['-1', 2],
      ['soon', 2],
      ['', 2],
    ] as const) {
      const child = run('server.js', ['--drain', value]);
      expect(await child.exited).toBe(exit);
      expect(child.errors()).toContain(`--drain must be a number of seconds, 0 or more, not "${value}"`);
    }
  }, 15_000);

  for (const backend of ['bun', 'deno'])
    it(`started from another directory (${tmpdir()}), --backend ${backend} finds ${backend} from the app's own installation`, async () => {
      const cwd = cleanup.dir('talk-cwd-');
      const server = run(
        'server.js',
        ['--backend', backend, '--service', '0', '--address', '127.0.0.1'],
        cwd,
      );
      await server.waitFor(new RegExp(`^talk server: backend ${backend}, runtime ${backend} \\d`, 'm'));
      const [, port] = await server.waitFor(/^.* port (\d+)\n/m);
      const client = run(
        'client.js',
        ['--backend', backend, '--service', port as string, '--host', '127.0.0.1'],
        cwd,
      );
      expect(await client.exited, client.errors()).toBe(0);
      expect(client.output().trim().split('\n')).toEqual(transcript);
      expect(await server.stop('SIGTERM')).toBe(0);
      expect(server.errors()).toBe('');
    }, 30_000);

  it('a runtime that is neither installed beside the app nor on PATH is one line that says where it looked', () => {
    // runtime.js alone, away from every node_modules, with an empty PATH.
    const dir = cleanup.dir('talk-runtime-');
    copyFileSync(new URL('../dist/runtime.js', import.meta.url), join(dir, 'runtime.js'));
    const script = `import(${JSON.stringify(join(dir, 'runtime.js'))}).then((m) => {
      for (const runtime of ['bun', 'deno']) {
        try { console.log(m.runtimeBinary(runtime)); } catch (error) { console.log(error.message); }
      }
      console.log(m.runtimeBinary('node') === process.execPath);
    })`;
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: dir,
      env: { PATH: '' },
      encoding: 'utf8',
    });
    expect(out.trim().split('\n')).toEqual([
      `cannot find the bun binary (looked in the bun package from ${dir} and PATH)`,
      `cannot find the deno binary (looked in the deno package from ${dir} and PATH)`,
      'true',
    ]);
  }, 15_000);
});

/**
 * comm-conformance's manners: --help, unknown arguments, and a column whose runtime is missing
 * (one line, at once, instead of every case failing).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const nodeModule = fileURLToPath(new URL('../../node/dist/index.js', import.meta.url));
/** Bun's binary, the workspace's devDependency: a runtime other than this one to run the CLI in. */
const bun = join(dirname(createRequire(import.meta.url).resolve('bun/package.json')), 'bin', 'bun.exe');

/** Runs `command` in its own process group (killed when the test ends); its exit code and output. */
function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  const started = Date.now();
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  onTestFinished(() => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // gone already
    }
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (err += t));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, out, err, ms: Date.now() - started })),
  );
}

describe('comm-conformance', () => {
  for (const flag of ['--help', '-h'])
    it(`${flag} prints the usage on stdout and exits 0`, async () => {
      const { code, out, err } = await run(process.execPath, [cli, flag]);
      expect(code).toBe(0);
      expect(out).toMatch(/^usage: comm-conformance /);
      for (const listed of ['--backend', '--column', '--informational', '--only', '--json', '--help, -h'])
        expect(out).toContain(`  ${listed}`);
      expect(err).toBe('');
    }, 15_000);

  it('an unknown argument is refused, naming it, with exit code 2', async () => {
    const { code, out, err } = await run(process.execPath, [cli, '--colour']);
    expect(code).toBe(2);
    expect(err.split('\n')[0]).toBe('unknown argument "--colour"');
    expect(out).toBe('');
  }, 15_000);

  for (const flag of ['--column', '--informational'])
    it(`${flag} whose runtime cannot be found fails at once, in one line naming the column and the runtime (exit 2)`, async () => {
      // In Bun, with an empty PATH: a node column has no node to run in.
      const { code, out, err, ms } = await run(
        bun,
        [cli, flag, `n20=node:${nodeModule}`, '--column', `b=bun:${nodeModule}`],
        { env: { PATH: '' } },
      );
      expect(code).toBe(2);
      expect(err).toBe(
        'comm-conformance: column "n20": cannot find the node binary (looked in PATH); install it or drop the column\n',
      );
      expect(out).toBe('');
      expect(ms).toBeLessThan(10_000);
    }, 15_000);

  it('Bun and Deno are looked for from the package itself, then from the current directory, then on PATH', async () => {
    // runtimes.js alone, away from every node_modules, with an empty PATH.
    const dir = mkdtempSync(join(tmpdir(), 'conformance-runtimes-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(new URL('../dist/runtimes.js', import.meta.url), join(dir, 'runtimes.js'));
    const script = `import(${JSON.stringify(join(dir, 'runtimes.js'))}).then((m) => {
      for (const runtime of ['bun', 'deno']) {
        try { console.log(m.runtimeBinary(runtime)); } catch (error) { console.log(error.message); }
      }
    })`;
    const { code, out } = await run(process.execPath, ['-e', script], { env: { PATH: '' }, cwd: dir });
    expect(code).toBe(0);
    expect(out.trim().split('\n')).toEqual([
      `cannot find the bun binary (looked in the bun package from ${dir} and PATH)`,
      `cannot find the deno binary (looked in the deno package from ${dir} and PATH)`,
    ]);
    // From another directory, the installed CLI still finds both: its own installation's.
    const found = await run(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(new URL('../dist/runtimes.js', import.meta.url).href)}).then((m) => console.log(m.runtimeBinary('bun'), m.runtimeBinary('deno')))`,
      ],
      { env: { PATH: '' }, cwd: dir },
    );
    expect(found.code, found.err).toBe(0);
    expect(found.out).toMatch(/\/bun\/bin\/bun\.exe \S+\/deno\/deno\n$/);
  }, 15_000);
});

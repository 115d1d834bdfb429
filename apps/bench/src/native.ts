import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** apps/bench, from dist/ or src/. */
export const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = join(benchDir, '..', '..');
const cacheDir = join(benchDir, 'node_modules', '.cache', 'comm-bench');

/** The C compiler's first line of `--version`, or null when there is none. */
export function compilerVersion(): string | null {
  try {
    return execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? null;
  } catch {
    return null;
  }
}

/**
 * The path of `loadgen/<name>.c` compiled with the system's `cc -O2`, built when missing or older
 * than its source or the header it shares (`buf.h`).
 */
export function nativeBinary(name: 'loadgen' | 'refserver'): string {
  const source = join(benchDir, 'loadgen', `${name}.c`);
  const binary = join(cacheDir, name);
  const header = join(benchDir, 'loadgen', 'buf.h');
  const newest = Math.max(statSync(source).mtimeMs, statSync(header).mtimeMs);
  if (existsSync(binary) && statSync(binary).mtimeMs >= newest) return binary;
  if (compilerVersion() === null)
    throw new Error(
      'the benchmark compiles its load generator with cc, and there is none: install a C compiler (on Debian: apt-get install gcc; node scripts/setup.mjs does it as root)',
    );
  mkdirSync(cacheDir, { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-o', `${binary}.tmp`, source], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  renameSync(`${binary}.tmp`, binary);
  return binary;
}

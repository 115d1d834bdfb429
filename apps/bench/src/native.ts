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
 * The path of `loadgen/<name>.c` compiled with the system's `cc -O2` and linked with OpenSSL
 * (`-lssl -lcrypto`: libssl-dev), built when missing or older than its source or the headers it
 * shares (`buf.h`, `tls.h`).
 */
export function nativeBinary(name: 'loadgen' | 'refserver'): string {
  const source = join(benchDir, 'loadgen', `${name}.c`);
  const binary = join(cacheDir, name);
  const headers = ['buf.h', 'tls.h'].map((h) => join(benchDir, 'loadgen', h));
  const newest = Math.max(statSync(source).mtimeMs, ...headers.map((h) => statSync(h).mtimeMs));
  if (existsSync(binary) && statSync(binary).mtimeMs >= newest) return binary;
  if (compilerVersion() === null)
    throw new Error(
      'the benchmark compiles its load generator with cc, and there is none: install a C compiler (on Debian: apt-get install gcc; node scripts/setup.mjs does it as root)',
    );
  mkdirSync(cacheDir, { recursive: true });
  try {
    execFileSync('cc', ['-O2', '-Wall', '-o', `${binary}.tmp`, source, '-lssl', '-lcrypto'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch (error) {
    // The usual cause: OpenSSL's headers and libraries are not installed.
    if (!existsSync('/usr/include/openssl/ssl.h'))
      throw new Error(
        `cannot compile ${name}.c: it speaks TLS with OpenSSL, whose headers are missing (/usr/include/openssl/ssl.h): on Debian apt-get install libssl-dev (node scripts/setup.mjs --bench does it as root)`,
      );
    throw error;
  }
  renameSync(`${binary}.tmp`, binary);
  return binary;
}

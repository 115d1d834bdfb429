// Gets a fresh clone ready with nothing but Node and npm: installs the workspace with the pinned
// pnpm when node_modules is missing or older than the lockfile. With --test, also the system tools
// the tests use: ss (iproute2) and python3 for the kernel checks, Debian's Chromium for the browser
// test, HAProxy and nginx with its stream module for the talk server's PROXY protocol tests (run as
// ordinary processes on free ports with their own configs; a system nginx that the package starts
// on port 80 is never used), a C compiler (gcc) and OpenSSL's headers and library (libssl-dev) for
// the benchmark's load generator (--bench: those only); and always the openssl command, with which
// the demo, the tests and the benchmark make their TLS certificates. Installed with apt-get when this
// is root on Debian, else named so that a person can.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.modules.yaml');
const lock = join(root, 'pnpm-lock.yaml');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
if (stale) execSync('npx -y pnpm@12.4.2 install', { cwd: root, stdio: 'inherit' });

// --test: what the tests need; --bench: what pnpm bench needs (a C compiler and libssl-dev for its
// load generator; the tests run a smoke of the benchmark, so --test checks for them too); neither:
// what the demo needs (openssl, for its TLS run).
const forTest = process.argv.includes('--test');
const forBench = forTest || process.argv.includes('--bench');
{
  const has = (command) => {
    try {
      execSync(`command -v ${command}`, { stdio: 'ignore', shell: '/bin/sh' });
      return true;
    } catch {
      return false;
    }
  };
  const missing = [];
  if (forTest && !has('ss')) missing.push('iproute2');
  if (forTest && !has('python3')) missing.push('python3');
  if (forTest && !existsSync('/usr/bin/chromium')) missing.push('chromium');
  if (forTest && !has('haproxy') && !existsSync('/usr/sbin/haproxy')) missing.push('haproxy');
  if (forTest && !existsSync('/usr/sbin/nginx')) missing.push('nginx');
  if (forTest && !existsSync('/usr/lib/nginx/modules/ngx_stream_module.so'))
    missing.push('libnginx-mod-stream');
  if (!has('openssl')) missing.push('openssl');
  if (forBench && !has('cc')) missing.push('gcc');
  if (forBench && !existsSync('/usr/include/openssl/ssl.h')) missing.push('libssl-dev');
  if (missing.length > 0) {
    const isRoot = process.getuid?.() === 0;
    if (isRoot && has('apt-get')) {
      console.log(
        `installing what ${forTest ? 'the tests need' : forBench ? 'pnpm bench needs' : 'the demo needs'}: ${missing.join(' ')}`,
      );
      execSync('apt-get update', { stdio: 'inherit' });
      execSync(`apt-get install -y ${missing.join(' ')}`, {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } else {
      console.error(
        `${forTest ? 'The tests need' : forBench ? 'pnpm bench needs' : 'The demo needs'} ${missing.join(', ')} (Debian packages; OpenSSL's headers at /usr/include/openssl/ssl.h; Chromium at /usr/bin/chromium, nginx at /usr/sbin/nginx, its stream module at /usr/lib/nginx/modules/ngx_stream_module.so). Install them, e.g. sudo apt-get install -y ${missing.join(' ')}`,
      );
      // Without --test or --bench only the demo's TLS run needs it: a build or a server goes on.
      if (forBench) process.exit(1);
    }
  }
}

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The built scripts, run as a user runs them: real processes, real ports.
import { type Child, scriptCommand, startChild } from '../dist/children.js';
import { haproxyConfig, NGINX_STREAM_MODULE, nginxConfig } from '../src/proxy-configs.js';

export { haproxyConfig, NGINX_STREAM_MODULE, nginxConfig };

export const transcript = [
  'I said: "Hello self."',
  `Self replied: "You sent: 'Hello self.'"`,
  `I said: "Why don't you say something original?"`,
  `Self replied: "You sent: 'Why don't you say something original?'"`,
  'I said: "Talk to you later then.  Bye."',
  `Self replied: "You sent: 'Talk to you later then.  Bye.'"`,
];
export const monologue = [
  'Hello self.',
  "Why don't you say something original?",
  'Talk to you later then.  Bye.',
];

/** Everything a test started, stopped (whole process groups) and removed after it. */
export class Cleanup {
  readonly #children: Child[] = [];
  readonly #dirs: string[] = [];
  readonly #sockets: net.Socket[] = [];

  child(command: string, args: readonly string[]): Child {
    const child = startChild(command, args);
    this.#children.push(child);
    return child;
  }

  script(script: string, args: readonly string[]): Child {
    return this.child(...scriptCommand(script, args));
  }

  dir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.#dirs.push(dir);
    return dir;
  }

  socket(socket: net.Socket): net.Socket {
    socket.on('error', () => {});
    this.#sockets.push(socket);
    return socket;
  }

  async run(): Promise<void> {
    for (const socket of this.#sockets.splice(0)) socket.destroy();
    await Promise.all(this.#children.splice(0).map((c) => c.stop('SIGKILL')));
    for (const dir of this.#dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** A port nothing listens on right now (the kernel's choice, given back at once). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, host, resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** `ss`'s listening TCP sockets on `port`: one entry per socket, with the pids that hold it. */
export function listeners(port: number): { pids: number[] }[] {
  const out = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => ({ pids: [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])) }));
}

export async function until<T>(what: string, probe: () => T | undefined | false, ms = 10_000): Promise<T> {
  for (const end = Date.now() + ms; ; ) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether any process is left in the process group `pgid`. */
export function groupAlive(pgid: number): boolean {
  return alive(-pgid);
}

/** Connects, from `localAddress`, and reads what comes back line by line. */
export async function connectFrom(
  cleanup: Cleanup,
  port: number,
  localAddress: string,
): Promise<{
  socket: net.Socket;
  localPort: number;
  line: () => Promise<string | null>;
  closed: Promise<number>;
}> {
  // To the loopback address of the client's family.
  const host = net.isIPv6(localAddress) ? '::1' : '127.0.0.1';
  const socket = cleanup.socket(net.connect({ host, port, localAddress }));
  const opened = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - opened)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffered = '';
  let ended = false;
  const wakers: (() => void)[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    buffered += text;
    for (const wake of wakers.splice(0)) wake();
  });
  socket.on('close', () => {
    ended = true;
    for (const wake of wakers.splice(0)) wake();
  });
  return {
    socket,
    localPort: socket.localPort as number,
    closed,
    async line() {
      for (;;) {
        const end = buffered.indexOf('\n');
        if (end >= 0) {
          const line = buffered.slice(0, end);
          buffered = buffered.slice(end + 1);
          return line;
        }
        if (ended) return null;
        await new Promise<void>((resolve) => wakers.push(resolve));
      }
    },
  };
}

/**
 * The seed's talk exchange, from `localAddress` to `port` (a proxy or the server): each line of
 * the monologue and its reply. Returns the client's own local port and the transcript.
 */
export async function talkFrom(
  cleanup: Cleanup,
  port: number,
  localAddress: string,
): Promise<{ localPort: number; lines: string[] }> {
  const client = await connectFrom(cleanup, port, localAddress);
  const lines: string[] = [];
  for (const said of monologue) {
    client.socket.write(`${said}\n`);
    lines.push(`I said: "${said}"`);
    lines.push(`Self replied: "${await client.line()}"`);
  }
  client.socket.end();
  await client.closed;
  return { localPort: client.localPort, lines };
}

const SETUP_HINT = 'run `node scripts/setup.mjs --test` (as root on Debian it installs them)';

/** A system tool the tests need, or a failure that says how to install it. */
export function tool(name: string, candidates: readonly string[]): string {
  for (const path of candidates) if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed: ${SETUP_HINT}`);
  }
}

/** Waits until something listens on `port` (asked of the kernel: no connection is made). */
export async function listening(port: number, who: Child, name: string): Promise<void> {
  await until(
    `${name} to listen on port ${port}`,
    () => {
      if (who.process.exitCode !== null || who.process.signalCode !== null)
        throw new Error(`${name} exited: ${who.errors().trim()} ${who.output().trim()}`);
      return listeners(port).length > 0;
    },
    10_000,
  );
}

/** HAProxy, as an ordinary process in its own group, in front of the talk server. Returns its port. */
export async function startHaproxy(
  cleanup: Cleanup,
  talkPort: number,
  listenHost = '127.0.0.1',
): Promise<number> {
  const haproxy = tool('haproxy', ['/usr/sbin/haproxy']);
  const dir = cleanup.dir('talk-haproxy-');
  const port = await freePort(listenHost);
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(port, talkPort, listenHost));
  // -db: in the foreground, not a daemon; -f: this config only.
  const child = cleanup.child(haproxy, ['-db', '-f', config]);
  await listening(port, child, 'haproxy');
  return port;
}

/** nginx with its stream module, as an ordinary process in its own group, its files in a temp dir. */
export async function startNginx(
  cleanup: Cleanup,
  talkPort: number,
  listenHost = '127.0.0.1',
): Promise<number> {
  const nginx = tool('nginx', ['/usr/sbin/nginx']);
  if (!existsSync(NGINX_STREAM_MODULE))
    throw new Error(`nginx's stream module (${NGINX_STREAM_MODULE}) is not installed: ${SETUP_HINT}`);
  const dir = cleanup.dir('talk-nginx-');
  const port = await freePort(listenHost);
  const config = join(dir, 'nginx.conf');
  writeFileSync(config, nginxConfig(dir, port, talkPort, listenHost));
  // -p: its prefix (relative paths) in the temp dir; -e: the log it writes before reading the config.
  const child = cleanup.child(nginx, ['-p', `${dir}/`, '-e', join(dir, 'error.log'), '-c', config]);
  await listening(port, child, 'nginx');
  return port;
}

/** A talk server on a free port of 127.0.0.1; returns it and its port. */
export async function startTalkServer(
  cleanup: Cleanup,
  args: readonly string[],
): Promise<{ server: Child; port: number }> {
  const server = cleanup.script('server.js', ['--service', '0', '--address', '127.0.0.1', ...args]);
  const [, port] = await server.waitFor(/^.* server listening on \S+ port (\d+)\n/m);
  return { server, port: Number(port) };
}

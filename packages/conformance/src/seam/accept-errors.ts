// seam.accept-errors-surface: at the descriptor limit, a backend passes its runtime's accept
// failure on (accept() rejects with EMFILE or ENFILE) rather than drop it, or the connection the
// process cannot hold is closed at once (what libuv does for node:net, and what Bun's and uWS's
// backends do before uSockets would spin on EMFILE: `admitConnection` in core). Either way no
// client is left waiting unseen, and the listener accepts again once descriptors are free.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import type { CaseContext } from '../suite.js';
import { defineCase, within } from '../suite.js';
import { connectPeer, type Peer, settled } from './peer.js';

/** The fixture's descriptor limit: the runtime's own few dozen, and room for some connections. */
const NOFILE = 64;

interface Limited {
  readonly child: ChildProcess;
  /** Stdout lines matching `pattern`, so far. */
  lines(pattern: RegExp): string[];
  /** Resolves once `count` lines match `pattern`; rejects if the child exits first. */
  wait(pattern: RegExp, count?: number): Promise<string[]>;
  output(): string;
}

/**
 * Runs `script` (in this directory) in the backend's runtime under `ulimit -n nofile`, with the
 * backend's entry as its argument, as its own process group, killed after the case.
 */
function spawnLimited(t: CaseContext, script: string, nofile: number): Limited {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const argv = [t.subject.entry];
  const command = t.subject.command ? t.subject.command(path, argv) : [process.execPath, path, ...argv];
  // The shell lowers RLIMIT_NOFILE, then becomes the runtime (exec).
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, ...command], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exited = false;
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      wake();
      resolve();
    }),
  );
  child.once('error', () => {
    exited = true;
    wake();
  });
  t.defer(async () => {
    if (!exited && child.pid !== undefined)
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    await gone;
  });
  const lines = (pattern: RegExp) => out.split('\n').filter((line) => pattern.test(line));
  return {
    child,
    lines,
    output: () => `${out}${err ? `\nstderr: ${err.trim().slice(-2000)}` : ''}`,
    async wait(pattern, count = 1) {
      for (;;) {
        const found = lines(pattern);
        if (found.length >= count) return found;
        if (exited)
          throw new Error(`the fixture exited before printing ${count} x ${pattern}:\n${out}\n${err}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

type Outcome = { kind: 'accepted' } | { kind: 'rejected'; line: string } | { kind: 'closed'; how: string };

/** What became of a connection to the fixture: told `accepted`, an accept() failure, or closed. */
async function fate(fixture: Limited, peer: Peer, failuresBefore: number): Promise<Outcome> {
  return Promise.race([
    peer.readLine().then((line): Outcome => {
      if (line === null) return { kind: 'closed', how: 'closed by the server side' };
      if (line.startsWith('accepted ')) return { kind: 'accepted' };
      throw new Error(`the fixture sent ${JSON.stringify(line)}`);
    }),
    fixture
      .wait(/^FAILED /, failuresBefore + 1)
      .then((lines): Outcome => ({ kind: 'rejected', line: lines[failuresBefore] as string })),
  ]);
}

/** The fixture's output in short: how many it accepted and freed, and its other lines. */
function summary(fixture: Limited): string {
  const accepted = fixture.lines(/^ACCEPTED /).length;
  const freed = fixture.lines(/^FREED /).length;
  const rest = fixture
    .output()
    .split('\n')
    .filter((line) => line !== '' && !/^(ACCEPTED|FREED) /.test(line));
  return `${accepted} accepted, ${freed} freed; ${rest.slice(0, 12).join(' | ')}`;
}

/** `promise`, or after 5 s the failure this case is about: a connection left unseen. */
async function seen<T>(promise: Promise<T>, fixture: Limited, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `${what}: neither accepted, nor an accept() rejection, nor closed within 5 s: the accept error was dropped (fixture: ${summary(fixture)})`,
              ),
            ),
          5000,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Connects, closed after the case. A connection refused or reset while connecting is the server
 * side closing it (returned as the reason); one that neither connects nor fails within 5 s fails.
 */
async function attempt(t: CaseContext, fixture: Limited, port: number, what: string): Promise<Peer | string> {
  const outcome = await seen(settled(connectPeer(t, port)), fixture, what);
  return outcome.status === 'resolved'
    ? outcome.value
    : String((outcome.error as Error | null)?.message ?? outcome.error);
}

defineCase(
  'seam.accept-errors-surface',
  `out of descriptors (ulimit -n ${NOFILE}), accept() rejects with EMFILE/ENFILE or the connection is closed at once, never left unseen; the listener accepts again once descriptors are free`,
  async (t) => {
    const fixture = spawnLimited(t, 'accept-errors-fixture.js', NOFILE);
    const [listening] = await within(fixture.wait(/^LISTENING \d+$/), 15_000, 'the fixture listening');
    const port = Number(listening?.split(' ')[1]);
    const peers: Peer[] = [];
    let outcome: Outcome = { kind: 'accepted' };
    for (let i = 1; outcome.kind === 'accepted'; i++) {
      assert.ok(
        i <= 4 * NOFILE,
        `${i - 1} connections held under ulimit -n ${NOFILE}: the limit was never reached`,
      );
      const failures = fixture.lines(/^FAILED /).length;
      const peer = await attempt(t, fixture, port, `connection ${i}`);
      if (typeof peer === 'string') {
        outcome = { kind: 'closed', how: `connecting failed: ${peer}` };
        break;
      }
      peers.push(peer);
      outcome = await seen(fate(fixture, peer, failures), fixture, `connection ${i}`);
    }
    if (outcome.kind === 'rejected') {
      const code = outcome.line.split(' ')[1];
      assert.ok(
        code === 'EMFILE' || code === 'ENFILE',
        `accept() rejected without the runtime's code: ${outcome.line}`,
      );
    }
    // Free descriptors: the fixture gives up each connection whose peer closed.
    for (const peer of peers) peer.destroy();
    const until = Date.now() + 15_000;
    for (;;) {
      const fresh = await attempt(t, fixture, port, 'a fresh connection').catch(() => 'no answer');
      if (typeof fresh !== 'string') {
        const line = await within(fresh.readLine(), 5000, 'a fresh connection answered or closed').catch(
          () => null,
        );
        fresh.destroy();
        if (line?.startsWith('accepted ')) break;
      }
      assert.ok(
        Date.now() < until,
        `no connection accepted in 15 s after descriptors were freed (${outcome.kind} at the limit; fixture: ${summary(fixture)})`,
      );
      await t.sleep(200);
    }
  },
  60_000,
);

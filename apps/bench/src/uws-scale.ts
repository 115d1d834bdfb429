// uws at scale: how long N WebSocket connections take to set up on a bare uWebSockets.js app
// (bare/uws.js) and on @comm/uws's talk server, each in its own Node child with a raised fd limit.
// The client is the C load generator in idle mode (--ws): it opens N connections, at most 256
// under way at a time, each sends one line and reads its reply; the time until every connection
// has its reply is the set-up time. As in `pnpm bench`, the servers run on CPU 1 and the load
// generator on CPU 0 (where taskset and two CPUs are there). Rounds alternate bare and @comm so
// that a busy machine weighs on both alike.
//
//   node apps/bench/dist/uws-scale.js [--connections 10000] [--rounds 3]
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeStreamAndTalk } from '@comm/talk/talk';
import { type Child, startChild } from './children.js';
import { parseFlags, positive, positiveFlag } from './flags.js';
import { type Pinning, pinned, pinningFor } from './measure.js';
import { benchDir, nativeBinary } from './native.js';

const usage = `usage: pnpm bench:uws-scale [-- OPTION...]   (or: node apps/bench/dist/uws-scale.js [OPTION]...)

How long N WebSocket connections take to set up on a bare uWebSockets.js app and on @comm/uws's
talk server, each in its own Node child, in alternating rounds; prints each round and the medians.

  --connections N   WebSocket connections per round (default 10000)
  --rounds N        rounds of each (default 3)
  --help, -h        prints this text
A value may also be given as --NAME=VALUE.`;

const self = fileURLToPath(import.meta.url);

/** The child's @comm/uws server: the seed's talk (make-stream-and-talk, which asks each peer's port). */
async function serveComm(): Promise<void> {
  const api = await import('@comm/uws');
  const [server, condition] = await api.startUpServer({
    service: 0,
    address: '127.0.0.1',
    backlog: 512,
    wait: true,
    error: false,
    function: makeStreamAndTalk(api as unknown as Parameters<typeof makeStreamAndTalk>[0]),
  });
  if (!server) throw condition;
  console.log(`@comm/uws listening on 127.0.0.1 port ${server.socket?.local.port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
}

/** --connections and --rounds; --help prints the usage and exits 0; anything else is exit 2. */
function parseOptions(argv: readonly string[]): { connections: number; rounds: number } {
  const { values } = parseFlags(argv, {
    usage,
    valued: ['connections', 'rounds'],
    check: (flag, text) => positive(usage, flag, text, 'digits'),
  });
  return {
    connections: positiveFlag(usage, values, 'connections', 10_000, 'digits'),
    rounds: positiveFlag(usage, values, 'rounds', 3, 'digits'),
  };
}

/** A Node child under bash, its fd limit raised to the hard limit (N connections need N fds). */
function nodeChild(pinning: Pinning, script: string, ...args: string[]): Child {
  return startChild(...pinned(pinning.server, process.execPath, [script, ...args]));
}

async function setUpSeconds(pinning: Pinning, server: Child, connections: number): Promise<number> {
  const [, port] = await server.waitFor(/port (\d+)/, 30_000);
  const loadgen = startChild(
    ...pinned(pinning.loadgen, nativeBinary('loadgen'), [
      ...['--port', port as string, '--mode', 'idle', '--ws', '--conns', String(connections)],
      ...['--seconds', '0.2', '--timeout', '600'],
    ]),
  );
  try {
    const [line] = await loadgen.waitFor(/\{"event":"established".*\}/, 620_000);
    const { established, seconds } = JSON.parse(line) as { established: number; seconds: number };
    if (established !== connections)
      throw new Error(`only ${established} of ${connections} connections were set up`);
    return seconds;
  } finally {
    await loadgen.exited;
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const { connections, rounds } = parseOptions(process.argv.slice(2));
  const pinning = pinningFor();
  console.log(`${connections} WebSocket connections, node ${process.versions.node}, ${rounds} rounds each`);
  console.log('round  bare uWS.js  @comm/uws  ratio');
  const bare: number[] = [];
  const comm: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    bare.push(
      await setUpSeconds(pinning, nodeChild(pinning, join(benchDir, 'dist', 'bare', 'uws.js')), connections),
    );
    comm.push(await setUpSeconds(pinning, nodeChild(pinning, self, '--serve-comm'), connections));
    const [b, c] = [bare.at(-1) as number, comm.at(-1) as number];
    console.log(
      `${String(round).padStart(5)}  ${b.toFixed(3).padStart(9)} s  ${c.toFixed(3).padStart(7)} s  ${(c / b).toFixed(2)}`,
    );
  }
  const [b, c] = [median(bare), median(comm)];
  console.log(`median ${b.toFixed(3).padStart(9)} s  ${c.toFixed(3).padStart(7)} s  ${(c / b).toFixed(2)}`);
}

// --serve-comm: this script as the @comm/uws child of a round (not for users, so not in the usage).
if (process.argv[2] === '--serve-comm') await serveComm();
else await main();

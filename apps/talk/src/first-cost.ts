import * as net from 'node:net';
import { parseArgs } from './args.js';
import { scriptCommand, startChild } from './children.js';

// The first cost figure: replies per second from the talk server on @comm/node against the same
// protocol on bare node:net, each a process of its own, loaded by this process with 50
// connections that each say a line and wait for the reply. Both listen with backlog 511 (Node's
// default), so that the burst of connects measures serving, not SYN retries. Rounds alternate between the two so
// that a noisy neighbour hurts both alike; the figure is the ratio of the medians.
parseArgs(
  process.argv.slice(2),
  { values: [], flags: [] },
  `usage: pnpm bench:first-cost   (or: node apps/talk/dist/first-cost.js)
Replies per second from the talk server on @comm/node against the same protocol on bare node:net,
in alternating rounds; prints the medians and their ratio. It takes no options; the environment may set
  CONNECTIONS=N  concurrent connections (default 50)
  SECONDS=S      seconds per round (default 3)
  ROUNDS=N       rounds of each (default 3)
  --help, -h     prints this text`,
);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

/** Replies per second over `seconds`, counted once all connections are open. */
async function load(port: number, seconds: number): Promise<number> {
  const sockets = await Promise.all(
    Array.from(
      { length: CONNECTIONS },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(socket));
          socket.once('error', reject);
        }),
    ),
  );
  let replies = 0;
  const started = Date.now();
  const until = started + seconds * 1000;
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          let buffered = '';
          socket.setEncoding('utf8');
          socket.on('data', (text: string) => {
            buffered += text;
            for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
              replies++;
              buffered = buffered.slice(at + 1);
              if (Date.now() >= until) {
                socket.end();
                return;
              }
              socket.write('Hello self.\n');
            }
          });
          socket.on('close', () => resolve());
          socket.on('error', () => resolve());
          socket.write('Hello self.\n');
        }),
    ),
  );
  return replies / ((Date.now() - started) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const baseline = startChild(...scriptCommand('baseline-server.js', []));
const comm = startChild(
  ...scriptCommand('server.js', [
    '--backend',
    'node',
    '--service',
    '0',
    '--address',
    '127.0.0.1',
    '--backlog',
    '511',
  ]),
);
try {
  const basePort = Number((await baseline.waitFor(/ port (\d+)\n/))[1]);
  const commPort = Number((await comm.waitFor(/ port (\d+)\n/))[1]);
  await load(basePort, 0.5);
  await load(commPort, 0.5);
  const rates = { baseline: [] as number[], comm: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    rates.baseline.push(await load(basePort, SECONDS));
    rates.comm.push(await load(commPort, SECONDS));
  }
  const b = median(rates.baseline);
  const c = median(rates.comm);
  console.log(`connections ${CONNECTIONS}, ${ROUNDS} rounds of ${SECONDS} s each, medians:`);
  console.log(
    `  node:net baseline   ${b.toFixed(0)} replies/s  (rounds: ${rates.baseline.map((r) => r.toFixed(0)).join(', ')})`,
  );
  console.log(
    `  @comm/node talk     ${c.toFixed(0)} replies/s  (rounds: ${rates.comm.map((r) => r.toFixed(0)).join(', ')})`,
  );
  console.log(`  ratio @comm/node / node:net = ${(c / b).toFixed(2)}`);
} finally {
  await Promise.all([baseline.stop(), comm.stop()]);
}

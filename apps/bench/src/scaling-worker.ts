import process from 'node:process';
import { makeStreamAndTalk, reportSessionFailure } from '@comm/talk/talk';

// One worker of the scaling row: the talk server (the talk app's own makeStreamAndTalk, as in
// `pnpm bench`) on @comm/<backend>, started with `reuseport: true` on 127.0.0.1, so that a second
// worker can listen on the port the first announced and the kernel spreads connections between
// them. The bench's own script rather than the talk app's CLI, which takes no reuseport option.
//
//   <runtime> scaling-worker.js node|bun|deno|uws PORT     (PORT 0: any free port)
//
// It counts the connections it accepted: SIGUSR2 prints `accepted N` (the count so far), and so
// does SIGTERM or SIGINT, before the server terminates and the process exits 0. A server that does
// not start prints `refused: <the startup condition>` and exits 1.
const backend = process.argv[2] ?? '';
const port = Number(process.argv[3] ?? '0');
if (!['node', 'bun', 'deno', 'uws'].includes(backend) || !Number.isInteger(port) || port < 0) {
  console.error('usage: scaling-worker.js node|bun|deno|uws PORT');
  process.exit(2);
}
const api = (await import(`@comm/${backend}`)) as Parameters<typeof makeStreamAndTalk>[0];

let accepted = 0;
const say = (line: string) => process.stdout.write(`${line}\n`);
// Installed before the server starts: a signal right after the announce line still gets its answer.
process.on('SIGUSR2', () => say(`accepted ${accepted}`));
let stop: () => void = () => {
  say(`accepted ${accepted}`);
  process.exit(0);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop());

const talk = makeStreamAndTalk(api, reportSessionFailure(false));
const [server, condition] = await api.startUpServer({
  function: (handle) => {
    accepted += 1;
    talk(handle);
  },
  service: port,
  address: '127.0.0.1',
  backlog: 4096,
  reuseport: true,
  nodelay: true,
  announce: null,
  error: false,
  wait: true,
});
if (!server) {
  say(`refused: ${condition.message.replace(/\s+/g, ' ')}`);
  process.exit(1);
}
say(`scaling worker ${process.pid} (${backend}) listening on 127.0.0.1 port ${server.socket?.local.port}`);
stop = () => {
  say(`accepted ${accepted}`);
  api.serverTerminate(server);
};
await server.terminated;
process.exit(0);

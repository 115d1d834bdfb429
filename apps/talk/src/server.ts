import { fail, parseArgs, serviceArg } from './args.js';
import { loadBackend } from './backends.js';
import { inRuntimeOf, runtimeDescription } from './runtime.js';
import { makeStreamAndTalk, reportSessionFailure } from './talk.js';

const usage = `usage: talk-server [--backend node|bun|deno|uws] [--service 10244] [--address ADDR] [--ipv6 any|both|true|false]
                   [--backlog N] [--keepalive] [--no-nodelay] [--announce] [--verbose]
Serves the seed's talk protocol until SIGINT or SIGTERM. --service 0 takes any free port.
A session that fails is one line on stderr (the peer and the cause); --verbose adds its stack.`;

const { values, flags } = parseArgs(
  process.argv.slice(2),
  {
    values: ['backend', 'service', 'address', 'ipv6', 'backlog'],
    flags: ['keepalive', 'nodelay', 'announce', 'verbose'],
  },
  usage,
);
const ipv6Text = values.get('ipv6') ?? 'any';
const ipv6 = ({ any: 'any', both: 'both', true: true, false: false } as const)[ipv6Text as 'any'];
if (ipv6 === undefined) fail(`--ipv6 must be any, both, true or false, not "${ipv6Text}"`, usage);
const backlogText = values.get('backlog');
const backlog = backlogText === undefined ? 5 : Number(backlogText);
if (!Number.isInteger(backlog) || backlog <= 0)
  fail(`--backlog must be a positive integer, not "${backlogText}"`, usage);

await inRuntimeOf(values.get('backend') ?? 'node', import.meta.url);
const api = await loadBackend(values.get('backend') ?? 'node');
console.log(`talk server: backend ${api.backend.name}, runtime ${runtimeDescription()}`);
// Installed before the server starts: a signal that comes right after the announce line still ends it cleanly.
let stop: () => void = () => process.exit(0);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop());
const [server, condition] = await api.startUpServer({
  function: makeStreamAndTalk(api, reportSessionFailure(flags.get('verbose') ?? false)),
  service: serviceArg(values.get('service') ?? '10244'),
  address: values.get('address') ?? null,
  ipv6,
  backlog,
  keepalive: flags.get('keepalive') ?? false,
  nodelay: flags.get('nodelay') ?? true,
  // The announce line is printed either way: scripts (the demo) read the port from it.
  announce: flags.get('announce') === false ? null : true,
  error: false,
  wait: true,
});
if (!server) {
  console.error(`talk server: ${condition.message}`);
  process.exit(1);
}
stop = () => api.serverTerminate(server);
await server.terminated;
if (server.state === 'failed') {
  console.error(`talk server failed: ${server.condition?.message}`);
  process.exit(1);
}
console.log(`${server.name} terminated`);
// Sessions handed on to their own processes do not keep a terminated server's process alive.
process.exit(0);

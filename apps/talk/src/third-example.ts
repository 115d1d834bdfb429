import type { ListeningSocket } from '@comm/core';
import { fail, help } from './args.js';
import { backendNames, loadBackend } from './backends.js';

// The seed's third example as written: a server on a free port whose announce function records the
// socket; getSocketAddress then tells the port.
const usage = `usage: node apps/talk/dist/third-example.js [BACKEND]
The seed's third example: a server on a free port whose announce function records the socket;
getSocketAddress then tells the port. It runs in this process's runtime.
  BACKEND     ${backendNames.join(', ')} (default node)
  --help, -h  prints this text`;
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) help(usage);
const unknown = argv.find((arg, i) => i > 0 || arg.startsWith('-'));
if (unknown !== undefined) fail(`unknown argument "${unknown}"`, usage);
const backend = argv[0] ?? 'node';
if (!(backendNames as readonly string[]).includes(backend))
  fail(`BACKEND must be one of ${backendNames.join(', ')}, not "${backend}"`, usage);
const api = await loadBackend(backend);
let mySocket: ListeningSocket | null = null;
function myAnnounceFunction(socket: ListeningSocket | null, condition: Error | null): void {
  if (socket) mySocket = socket;
  else if (condition) console.error(`my-log-error: ${condition.message}`);
}
const server = api.startUpServer({
  service: null,
  error: false,
  announce: myAnnounceFunction,
  function: (handle) => handle.destroy(),
});
while (server.state === 'starting') await new Promise((resolve) => setTimeout(resolve, 5));
const [address, port] = api.getSocketAddress(mySocket);
console.log(`address ${api.ipAddressString(address as number)} port ${port}`);
api.serverTerminate(server);

import type { ListeningSocket } from '@comm/core';
import { loadBackend } from './backends.js';

// The seed's third example as written: a server on a free port whose announce function records the
// socket; getSocketAddress then tells the port.
const api = await loadBackend(process.argv[2] ?? 'node');
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

import { startTalkWeb } from './server.js';

const usage = `usage: talk-web [--service 10245] [--address ADDR]
Serves the talk page and the seed's talk protocol (over WebSocket, on @comm/uws) until SIGINT or SIGTERM.`;

const args = process.argv.slice(2);
const values = new Map<string, string>();
for (let i = 0; i < args.length; i++) {
  const name = args[i] as string;
  const value = args[i + 1];
  if ((name !== '--service' && name !== '--address') || value === undefined) {
    console.error(usage);
    process.exit(2);
  }
  values.set(name.slice(2), value);
  i++;
}
const service = values.get('service') ?? '10245';
const talk = await startTalkWeb({
  service: /^\d+$/.test(service) ? Number(service) : service,
  address: values.get('address') ?? null,
  announce: true,
}).catch((error: Error) => {
  console.error(`talk-web: ${error.message}`);
  process.exit(1);
});
console.log(`talk-web: open ${talk.url} in a browser`);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void talk.stop().then(() => process.exit(0));
  });

import { startTalkWeb } from './server.js';

const usage = `usage: talk-web [OPTION]...
Serves the talk page and the seed's talk protocol (over WebSocket, on @comm/uws) until SIGINT or SIGTERM.
  --service PORT|NAME  the port to listen on (default 10245); 0 takes any free port
  --address ADDR       the address or host name to listen on (default: every address)
  --help, -h           prints this text
A value may also be given as --NAME=VALUE.`;

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

const args = process.argv.slice(2);
const values = new Map<string, string>();
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg === '--help' || arg === '-h') {
    console.log(usage);
    process.exit(0);
  }
  const [name, inline] = arg.split(/=(.*)/s) as [string, string?];
  if (name !== '--service' && name !== '--address') fail(`unknown argument "${arg}"`);
  const value = inline ?? args[++i];
  if (value === undefined) fail(`${name} needs a value`);
  values.set(name.slice(2), value);
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

import { parseArgs } from './args.js';
import { backendNames } from './backends.js';
import { type Certificates, makeCertificates } from './certs.js';
import { scriptCommand, startChild } from './children.js';
import { tlsDemoBackends } from './demo-backends.js';

// The seed's talk example end to end, with real processes: a talk server on a free port, the
// client against it, the transcript, then the server stopped as a user would (SIGTERM). Then the
// same over TLS: a CA and a certificate for localhost made now with the system's openssl in a
// temp dir (removed after), the server with --tls-cert/--tls-key, the client with --tls --ca.
parseArgs(
  process.argv.slice(2),
  { values: [], flags: [] },
  `usage: pnpm demo   (or: node apps/talk/dist/demo.js)
The seed's talk example end to end on every backend (${backendNames.join(', ')}), then over TLS:
a talk server on a free port, the client against it, the transcript, the server stopped by SIGTERM.
Exits 1 if any run fails. It takes no options.
  --help, -h  prints this text`,
);
let failed = false;
/** The processes running now: a signal to the demo stops them too (each has its own group). */
const running = new Set<ReturnType<typeof startChild>>();

async function talk(backend: string, tls: Certificates | null): Promise<void> {
  console.log(`--- talk${tls ? ' over TLS' : ''} on the ${backend} backend ---`);
  const serverTls = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
  const server = startChild(
    ...scriptCommand('server.js', ['--backend', backend, '--service', '0', ...serverTls]),
  );
  running.add(server);
  try {
    const [, port] = await server.waitFor(/ port (\d+)\n/);
    const clientTls = tls ? ['--tls', '--ca', tls.ca] : [];
    const client = startChild(
      ...scriptCommand('client.js', ['--backend', backend, '--service', port as string, ...clientTls]),
      { echo: true },
    );
    running.add(client);
    if ((await client.exited) !== 0) failed = true;
    running.delete(client);
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\n${server.errors()}`);
    failed = true;
  } finally {
    const code = await server.stop('SIGTERM');
    running.delete(server);
    if (code !== 0) {
      console.error(`demo: the ${backend} talk server exited with ${code} on SIGTERM`);
      failed = true;
    }
  }
}

let certificates: Certificates | null = null;
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    for (const child of running) void child.stop('SIGKILL');
    certificates?.remove();
    process.exit(130);
  });

for (const backend of backendNames) await talk(backend, null);

try {
  certificates = makeCertificates('comm-talk-demo-');
} catch (error) {
  console.error(`demo: cannot make the certificates for the TLS run: ${(error as Error).message}`);
  failed = true;
}
if (certificates !== null) {
  try {
    for (const backend of tlsDemoBackends) await talk(backend, certificates);
  } finally {
    certificates.remove();
  }
}
process.exit(failed ? 1 : 0);

import type { SslClientContext } from '@comm/core';
import { fail, parseArgs, serviceArg } from './args.js';
import { loadBackend } from './backends.js';
import { inRuntimeOf } from './runtime.js';
import { talkingToMyself } from './talk.js';

const usage = `usage: talk-client [OPTION]...
The seed's talking-to-myself: says three lines to a talk server and prints each reply.
  --backend node|bun|deno|uws  the backend, run in its own runtime (default node; uws runs in Node)
  --host HOST                  the server's host (default localhost); with --tls, the name verified and sent as SNI
  --service PORT|NAME          the server's port (default 10244)
  --tls                        talks TLS, verifying the server's certificate against the system's trusted roots
  --ca FILE                    with --tls: trusts only the authorities in FILE (PEM)
  --help, -h                   prints this text`;
const { values, flags } = parseArgs(
  process.argv.slice(2),
  { values: ['backend', 'host', 'service', 'ca'], flags: ['tls'] },
  usage,
);
const tls = flags.get('tls') ?? false;
const caFile = values.get('ca');
if (caFile !== undefined && !tls) fail('--ca needs --tls', usage);
await inRuntimeOf(values.get('backend') ?? 'node', import.meta.url);
const api = await loadBackend(values.get('backend') ?? 'node');
const service = serviceArg(values.get('service') ?? '10244');
if (service === null) fail('talk client: --service must name a port');
let sslCtx: SslClientContext | null = null;
if (tls) {
  try {
    // The system's roots without --ca; host names verified either way.
    sslCtx = api.createSslClientContext(caFile === undefined ? {} : { caFile });
  } catch (error) {
    // A file that cannot be read, or holds no PEM certificate: core's message names it.
    fail(`talk client: ${(error as Error).message}`);
  }
}
const host = values.get('host') ?? 'localhost';
try {
  await talkingToMyself(api, host, service, console.log, sslCtx === null ? {} : { sslCtx });
} catch (error) {
  // One line: a certificate that is not trusted says the host, the name verified and why.
  console.error(`talk client: ${oneLine(error)}`);
  process.exit(1);
}

/** The error's first line, with its code when the message does not already say it. */
function oneLine(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = error.message.split('\n')[0] as string;
  const cause = (error as { cause?: unknown }).cause;
  const code =
    (cause as { code?: unknown } | null)?.code ?? (error as { code?: unknown } | null)?.code ?? undefined;
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

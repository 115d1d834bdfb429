import { fileURLToPath } from 'node:url';
import { createSslServerContext, type IpAddress, ipAddressString, type SocketHandle } from '@comm/core';
import { trustedSources } from '@comm/core/backend';
import { fail, parseArgs, serviceArg } from './args.js';
import { backendNames, loadBackend, type TalkApi } from './backends.js';
import { inRuntimeOf, runtimeDescription, runtimeOf } from './runtime.js';
import { makeStreamAndTalk, reportSessionFailure } from './talk.js';
import { runWorkers, watchSupervisor, withoutValue } from './workers.js';

const usage = `usage: talk-server [OPTION]...
Serves the seed's talk protocol until SIGINT or SIGTERM; a session that fails is one line on stderr.
  --backend node|bun|deno|uws    the backend, run in its own runtime (default node; uws runs in Node)
  --service PORT|NAME            the port to listen on (default 10244); 0 takes any free port
  --address ADDR                 the address or host name to listen on (default: every address)
  --ipv6 any|both|true|false     the address family to listen on (default any)
  --backlog N                    the listen queue's length (default 5)
  --keepalive                    sets SO_KEEPALIVE on every connection
  --no-nodelay                   leaves Nagle's algorithm on (TCP_NODELAY is set by default)
  --no-announce                  does not print the "server listening on ADDRESS port PORT" line
  --verbose                      a failed session's line on stderr is followed by its stack
  --log-sessions                 prints "session from ADDRESS port PORT" for each connection
  --reuseport                    sets SO_REUSEPORT (Node needs 22.12 or later)
  --workers N                    runs N servers on one port, each its own process, restarting any that dies
  --drain S                      on SIGINT or SIGTERM, stops listening at once, gives the sessions up to
                                 S seconds to end, then closes them and exits 0 (without it: at once)
  --proxy-protocol v1|v2|any     every connection begins with a PROXY protocol header of that version
  --trusted-proxy ADDR[/PREFIX]  a proxy that may send the header (repeatable; default loopback)
  --proxy-timeout S              the seconds a proxy has to send the header (default 5)
  --tls-cert FILE                serves TLS with this certificate (PEM, its chain after it); needs --tls-key
  --tls-key FILE                 the certificate's key (PEM, unencrypted); needs --tls-cert
  --help, -h                     prints this text
A flag without a value also takes --no-FLAG; a value may also be given as --NAME=VALUE.`;

const { values, flags, lists } = parseArgs(
  process.argv.slice(2),
  {
    values: [
      'backend',
      'service',
      'address',
      'ipv6',
      'backlog',
      'workers',
      'proxy-protocol',
      'proxy-timeout',
      'tls-cert',
      'tls-key',
      'drain',
    ],
    flags: ['keepalive', 'nodelay', 'announce', 'verbose', 'reuseport', 'log-sessions'],
    lists: ['trusted-proxy'],
  },
  usage,
);
const backendName = values.get('backend') ?? 'node';
if (!(backendNames as readonly string[]).includes(backendName))
  fail(`--backend must be one of ${backendNames.join(', ')}, not "${backendName}"`, usage);
const ipv6Text = values.get('ipv6') ?? 'any';
const ipv6 = ({ any: 'any', both: 'both', true: true, false: false } as const)[ipv6Text as 'any'];
if (ipv6 === undefined) fail(`--ipv6 must be any, both, true or false, not "${ipv6Text}"`, usage);
const backlogText = values.get('backlog');
const backlog = backlogText === undefined ? 5 : Number(backlogText);
if (!Number.isInteger(backlog) || backlog <= 0)
  fail(`--backlog must be a positive integer, not "${backlogText}"`, usage);

const workersText = values.get('workers');
const workers = workersText === undefined ? null : Number(workersText);
if (workers !== null && (!/^\d+$/.test(workersText as string) || workers < 1 || workers > 1024))
  fail(`--workers must be an integer from 1 to 1024, not "${workersText}"`, usage);

const proxyText = values.get('proxy-protocol');
const proxyProtocol =
  proxyText === undefined ? false : ({ v1: 'v1', v2: 'v2', any: true } as const)[proxyText as 'v1'];
if (proxyProtocol === undefined) fail(`--proxy-protocol must be v1, v2 or any, not "${proxyText}"`, usage);
const trustedProxies = (lists.get('trusted-proxy') ?? []).flatMap((text) => text.split(','));
for (const block of trustedProxies)
  if (!isAddressOrBlock(block))
    fail(`--trusted-proxy must be an IP address or a CIDR block (ADDRESS/PREFIX), not "${block}"`, usage);
const timeoutText = values.get('proxy-timeout');
const proxyHeaderTimeout = timeoutText === undefined ? undefined : Number(timeoutText);
if (
  proxyHeaderTimeout !== undefined &&
  (timeoutText?.trim() === '' || !Number.isFinite(proxyHeaderTimeout) || proxyHeaderTimeout <= 0)
)
  fail(`--proxy-timeout must be a positive number of seconds, not "${timeoutText}"`, usage);
if (proxyProtocol === false && (trustedProxies.length > 0 || timeoutText !== undefined))
  fail(`--${timeoutText === undefined ? 'trusted-proxy' : 'proxy-timeout'} needs --proxy-protocol`, usage);

const drainText = values.get('drain');
const drain = drainText === undefined ? null : Number(drainText);
if (drain !== null && (drainText?.trim() === '' || !Number.isFinite(drain) || drain < 0))
  fail(`--drain must be a number of seconds, 0 or more, not "${drainText}"`, usage);

const tlsCert = values.get('tls-cert');
const tlsKey = values.get('tls-key');
if ((tlsCert === undefined) !== (tlsKey === undefined))
  fail(tlsCert === undefined ? '--tls-key needs --tls-cert' : '--tls-cert needs --tls-key', usage);
// Read now, in whatever runtime this is (the supervisor of --workers too): a file that cannot be
// read is a usage error that names it, before anything starts.
const checkedTls = tlsContext(createSslServerContext);

if (workers !== null)
  await runWorkers({
    count: workers,
    runtime: runtimeOf[backendName] ?? 'node',
    script: fileURLToPath(import.meta.url),
    // --drain goes on to every worker; the supervisor waits that much longer for them.
    args: withoutValue(process.argv.slice(2), 'workers'),
    drain,
  });

await inRuntimeOf(backendName, import.meta.url);
const api = await loadBackend(backendName);
const sslCtx = checkedTls === null ? null : tlsContext(api.createSslServerContext);
console.log(
  `talk server: backend ${api.backend.name}, runtime ${runtimeDescription()}${tlsCert === undefined ? '' : `, TLS with ${tlsCert}`}`,
);
// Installed before the server starts: a signal that comes right after the announce line still ends it cleanly.
let stop: () => void = () => process.exit(0);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop());
// A worker of --workers ends when its supervisor has gone, however it went.
watchSupervisor(() => stop());

const talk = makeStreamAndTalk(api, reportSessionFailure(flags.get('verbose') ?? false));
const logSessions = flags.get('log-sessions') ?? false;
const [server, condition] = await (async () => {
  try {
    return await api.startUpServer({
      function: logSessions
        ? (handle: SocketHandle) => {
            console.log(sessionLine(api.getSocketPeerAddress(handle)));
            return talk(handle);
          }
        : talk,
      service: serviceArg(values.get('service') ?? '10244'),
      address: values.get('address') ?? null,
      ipv6,
      backlog,
      keepalive: flags.get('keepalive') ?? false,
      nodelay: flags.get('nodelay') ?? true,
      // Only when asked: a core without SO_REUSEPORT support still serves everyone else.
      ...(flags.get('reuseport') ? { reuseport: true } : {}),
      ...(proxyProtocol === false
        ? {}
        : {
            proxyProtocol,
            ...(trustedProxies.length > 0 ? { trustedProxies } : {}),
            ...(proxyHeaderTimeout === undefined ? {} : { proxyHeaderTimeout }),
          }),
      ...(sslCtx === null ? {} : { sslCtx }),
      // The announce line is printed either way: scripts (the demo) read the port from it.
      announce: flags.get('announce') === false ? null : true,
      error: false,
      wait: true,
    });
  } catch (error) {
    // An option the core refuses at the call (a TypeError naming it): a usage error.
    fail(`talk server: ${(error as Error).message}`);
  }
})();
if (!server) {
  console.error(`talk server: ${condition.message.split('\n')[0]}`);
  process.exit(1);
}
let drainStarted = 0;
stop =
  drain === null
    ? () => api.serverTerminate(server)
    : () => {
        // The port is free at once; the sessions have `drain` seconds to end by themselves.
        const live = server.sessions.size;
        if (!api.serverTerminate(server, { drain })) return;
        drainStarted = Date.now();
        console.log(`talk server: draining ${live} session${live === 1 ? '' : 's'} for ${drain} s`);
      };
await server.terminated;
if (server.state === 'failed') {
  console.error(`talk server failed: ${server.condition?.message}`);
  process.exit(1);
}
if (drain !== null) {
  await server.drained;
  console.log(`talk server: drained in ${((Date.now() - drainStarted) / 1000).toFixed(1)} s`);
}
console.log(`${server.name} terminated`);
// Sessions handed on to their own processes do not keep a terminated server's process alive.
process.exit(0);

/**
 * The server's TLS context from --tls-cert and --tls-key, made with `create` (core's
 * createSslServerContext; the backend's own for its server); null without them.
 * A file that cannot be read, or holds no PEM certificate or key, exits 2 with core's message,
 * which names the file.
 */
function tlsContext(
  create: TalkApi['createSslServerContext'],
): ReturnType<TalkApi['createSslServerContext']> | null {
  if (tlsCert === undefined || tlsKey === undefined) return null;
  try {
    return create({ certFile: tlsCert, keyFile: tlsKey });
  } catch (error) {
    return fail(`talk server: ${(error as Error).message}`);
  }
}

/** `session from 127.0.0.2 port 40000`: the peer as getSocketPeerAddress gives it (the proxy's client, with --proxy-protocol). */
function sessionLine([address, port]: readonly [IpAddress | string | null, number | null]): string {
  if (address === null) return 'session from an unknown peer';
  return `session from ${typeof address === 'string' ? address : ipAddressString(address)} port ${port}`;
}

/** An IPv4 or IPv6 address, or a CIDR block of either (`10.0.0.0/8`, `fd00::/8`), as core reads `trustedProxies`. */
function isAddressOrBlock(text: string): boolean {
  try {
    trustedSources([text]);
    return true;
  } catch {
    return false;
  }
}

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { TlsServerSpec } from '@comm/core/backend';
import type { UwsApp, UwsAppOptions, UwsModule } from './uws-types.js';

/** Where uWS says why it cannot refuse clients without a certificate (R22.client-certificate). */
export const CLIENT_CERTIFICATE_UPSTREAM = 'https://github.com/uNetworking/uWebSockets.js/issues/1058';
export const CLIENT_CERTIFICATE_UNSUPPORTED =
  "uWebSockets.js v20.30 cannot require a client certificate: SSLApp's ca_file_name makes uSockets ask for one and refuse a certificate the authorities did not sign, but it sets SSL_VERIFY_PEER without SSL_VERIFY_FAIL_IF_NO_PEER_CERT, so a client that sends none is let in, and JavaScript cannot see the peer's certificate to turn it away; so a server asking for requestCert does not start (ENOTSUP)";

/** Where uSockets says it will not start TLS on a connected socket (R22.starttls-*). */
export const STARTTLS_UPSTREAM = 'https://github.com/uNetworking/uSockets/issues/143';
export const STARTTLS_UNSUPPORTED =
  "uWebSockets.js has no STARTTLS: TLS is SSLApp's from the connection's first byte, there is no call that starts it on an accepted plain socket (upstream declined it for uSockets), and a connection's bytes travel inside WebSocket messages after an HTTP upgrade uWS parses itself; so this backend's client, which speaks comm-stream to a uWS server, cannot either";

/** Where uWS's HTTP timeout is (R22.server-handshake-timeout). */
export const HANDSHAKE_TIMEOUT_UPSTREAM =
  'https://github.com/uNetworking/uWebSockets/blob/master/src/HttpContext.h';
export const HANDSHAKE_TIMEOUT_UNSUPPORTED =
  "uWS finishes the TLS handshake and the WebSocket upgrade before JavaScript hears of a connection, so core's handshakeTimeout never sees a client that stays silent: uWS's own HTTP idle timeout (HTTP_IDLE_TIMEOUT_S, 10 s, counted in uSockets' 4-second ticks: closed after 8 to 12 s) closes it, whatever the context's handshakeTimeout. Such a client holds up no other (uWS handshakes every connection concurrently, out of JavaScript)";

function unsupported(message: string): Error {
  return Object.assign(new Error(message), { code: 'ENOTSUP' });
}

/** The error `startTls` throws on both sides: uWS has no STARTTLS. */
export function startTlsUnsupported(side: 'server' | 'client'): Error {
  return unsupported(
    `@comm/uws cannot start TLS on a connected ${side === 'server' ? 'accepted' : 'client'} socket: ${STARTTLS_UNSUPPORTED} (${STARTTLS_UPSTREAM}); listen with sslCtx (wss) instead`,
  );
}

/**
 * Checks a server's TLS before uWS sees it: what uWS cannot do is refused with ENOTSUP, and the
 * certificate, key and passphrase are loaded once by Node's OpenSSL, so that a wrong passphrase or a
 * key that does not fit fails with OpenSSL's reason (uWS says only "App construction failed").
 */
export function checkServerTls(uws: UwsModule, tls: TlsServerSpec): void {
  if (typeof uws.SSLApp !== 'function')
    throw unsupported('this uWebSockets.js module has no SSLApp (the JavaScript fallback): no TLS listener');
  if (tls.requestCert)
    throw unsupported(`@comm/uws: ${CLIENT_CERTIFICATE_UNSUPPORTED} (${CLIENT_CERTIFICATE_UPSTREAM})`);
  createSecureContext({ cert: tls.cert, key: tls.key, passphrase: tls.passphrase });
}

/**
 * SSLApp's options: uWS reads the files itself. No `ca_file_name`: it would make uSockets ask
 * clients for certificates, which only `requestCert` may (and that is refused above).
 */
export function sslAppOptions(tls: TlsServerSpec): UwsAppOptions {
  return {
    cert_file_name: tls.files.cert,
    key_file_name: tls.files.key,
    ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
  };
}

/** Makes the TLS app, with the reason when uWS cannot (the files changed since they were read). */
export function sslApp(uws: UwsModule, tls: TlsServerSpec): UwsApp {
  const make = uws.SSLApp;
  if (typeof make !== 'function') throw unsupported('this uWebSockets.js module has no SSLApp');
  try {
    return make(sslAppOptions(tls));
  } catch (error) {
    throw Object.assign(
      new Error(
        `uWebSockets.js could not load the certificate ${tls.files.cert} and key ${tls.files.key}: ${(error as Error).message}`,
      ),
      { code: 'EINVAL' },
    );
  }
}

/**
 * The SNI name each connection asked for. uWS tells a handler nothing about the handshake, but it
 * routes a request by its SNI name to the router of a name given with `addServerName`: so each
 * name a client asks for is given (with the same certificate) the first time it is asked for,
 * from uWS's missing-server-name callback, inside that handshake, and `register` gives its router
 * the same routes, whose connections then know the name.
 *
 * Only names the certificate covers (a client asking for another fails verification anyway) and
 * at most `limit` of them, since uWS cannot remove a name while its connections live. uWS
 * crashes the process when `addServerName` cannot load the files, so a name is given only while
 * they still hold the text the server was started with. uWS v20.30 prints two lines on standard
 * output for every name given (`domain()`'s "Browsed to SNI").
 */
export function serveServerNames(
  app: UwsApp,
  tls: TlsServerSpec,
  limit: number,
  register: (router: UwsApp, servername: string) => void,
): void {
  const { addServerName, domain, missingServerName } = app;
  if (limit === 0 || !addServerName || !domain || !missingServerName) return;
  const certificate = new X509Certificate(tls.cert);
  const options = sslAppOptions(tls);
  const given = new Set<string>();
  missingServerName.call(app, (name: string) => {
    try {
      if (given.size >= limit || given.has(name) || certificate.checkHost(name) === undefined) return;
      if (!unchanged(tls)) return;
      given.add(name);
      addServerName.call(app, name, options);
      register(domain.call(app, name), name);
    } catch {
      // Nothing may be thrown into uWS's handshake: the connection goes on without its name.
    }
  });
}

/** True while the files hold the PEM text the server was started with. */
function unchanged(tls: TlsServerSpec): boolean {
  try {
    return (
      readFileSync(tls.files.cert, 'utf8') === tls.cert && readFileSync(tls.files.key, 'utf8') === tls.key
    );
  } catch {
    return false;
  }
}

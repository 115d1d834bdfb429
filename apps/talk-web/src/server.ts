import { readFileSync } from 'node:fs';
import { bindUws, type ServerProcess, type SocketStream } from '@comm/uws';
import type { UwsHttpRequest, UwsHttpResponse } from '@comm/uws/backend';
import { makeStreamAndTalk } from './talk.js';

/** The page and its script: `public/index.html`, and the page module tsc built into `dist/page` (from src/ or dist/ alike). */
function files(): Map<string, { type: string; body: string }> {
  const read = (relative: string) => readFileSync(new URL(relative, import.meta.url), 'utf8');
  const html = { type: 'text/html; charset=utf-8', body: read('../public/index.html') };
  return new Map([
    ['/', html],
    ['/index.html', html],
    ['/client.js', { type: 'text/javascript; charset=utf-8', body: read('../dist/page/client.js') }],
  ]);
}

export interface TalkWeb {
  readonly server: ServerProcess;
  readonly port: number;
  /** The page's address. */
  readonly url: string;
  /** Closes every talking connection, as a dropped network would (the page then reconnects). */
  dropConnections(): number;
  /** Ends the server; resolves once it has ended. */
  stop(): Promise<void>;
}

/**
 * The talk server on @comm/uws, with the page served over HTTP on the same port: GET / is the
 * page, and its WebSocket (any other path, `/comm` by the page's choice) is the talk connection.
 */
export async function startTalkWeb(
  options: { service?: number | string | null; address?: string | null; announce?: boolean } = {},
): Promise<TalkWeb> {
  const pages = files();
  const live = new Set<SocketStream>();
  const api = bindUws({
    routes: (app) => {
      for (const [path, file] of pages)
        app.get(path, (res: UwsHttpResponse, req: UwsHttpRequest) => {
          // A WebSocket client on this path is the talk connection's, not the page's.
          if (req.getHeader('upgrade').toLowerCase() === 'websocket') {
            req.setYield(true);
            return;
          }
          res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-store').end(file.body);
        });
    },
  });
  const [server, condition] = await api.startUpServer({
    function: makeStreamAndTalk(live),
    service: options.service ?? 10245,
    address: options.address ?? null,
    processName: 'talk-web server',
    announce: options.announce ? true : null,
    error: false,
    wait: true,
  });
  if (!server) throw condition;
  const port = server.socket?.local.port as number;
  const host = server.socket?.local.address ?? '127.0.0.1';
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port,
    url: `http://${shown}:${port}/`,
    dropConnections() {
      const streams = [...live];
      for (const stream of streams) void stream.close({ abort: true });
      return streams.length;
    },
    async stop() {
      api.serverTerminate(server);
      for (const stream of live) void stream.close({ abort: true });
      await server.terminated;
    },
  };
}

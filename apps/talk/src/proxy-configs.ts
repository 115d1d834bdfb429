// The load balancer configurations the README shows and the proxy tests run: one text for both,
// so that the README's can be checked against what the tests prove works.
import * as net from 'node:net';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** The HAProxy configuration the tests use: TCP mode, the client's addresses to the talk server in a v2 header. */
export function haproxyConfig(listenPort: number, talkPort: number, listenHost = '127.0.0.1'): string {
  return `global
    maxconn 256

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend talk
    bind ${listenHost}:${listenPort}
    default_backend talk_servers

backend talk_servers
    server s1 127.0.0.1:${talkPort} send-proxy-v2
`;
}

/** The nginx configuration the tests use: a stream proxy that sends a v1 header; every path in `dir`. */
export function nginxConfig(
  dir: string,
  listenPort: number,
  talkPort: number,
  listenHost = '127.0.0.1',
): string {
  return `load_module ${NGINX_STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;

events {
    worker_connections 256;
}

stream {
    server {
        listen ${net.isIPv6(listenHost) ? `[${listenHost}]` : listenHost}:${listenPort};
        proxy_pass 127.0.0.1:${talkPort};
        proxy_protocol on;
    }
}
`;
}

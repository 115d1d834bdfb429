import type { ListenSpec } from '@comm/core/backend';

/** What every seam case (and the accept-errors fixture) listens with: loopback, a port the system picks, room for the case's clients. */
export const LISTEN: ListenSpec = {
  host: '127.0.0.1',
  port: 0,
  family: 4,
  ipv6Only: false,
  backlog: 128,
  reusePort: false,
};

import { readdirSync, readFileSync } from 'node:fs';

/**
 * R14a for runtimes built on uSockets (Bun, uWS). When accept(2) fails with EMFILE, uSockets' loop
 * tries again at once, for ever, without telling JavaScript: a server at its descriptor limit burns
 * a whole core (https://github.com/oven-sh/bun/pull/32705). So accepted connections must never
 * take the last descriptors: a backend asks `admitConnection()` for each connection its runtime has
 * accepted, and closes at once one that is refused (what libuv does at EMFILE for node:net), so
 * accept(2) itself never runs out. Connections are admitted again as soon as descriptors are free.
 *
 * Counting the process's descriptors costs one directory read of /proc/self/fd, so it is done only
 * when the estimate says the limit is near, and again each time half the headroom last counted is
 * used up. Where /proc is missing, nothing is counted and every connection is admitted.
 */
const RESERVE = 16;

/** The soft RLIMIT_NOFILE, or null when there is none or it cannot be read. */
function descriptorLimit(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const limit = Number(soft);
  return Number.isInteger(limit) && limit > 0 ? limit : null;
}

/** Open descriptors of this process, or null without /proc. */
function openDescriptors(): number | null {
  try {
    // readdir holds one descriptor of its own for the directory while it reads.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

/** Connections that may still be admitted before the next count. */
let untilCount = 0;

/**
 * For a connection Bun has just accepted (its descriptor is open already): true if it may stay;
 * false if the process is so near its limit that it must be closed at once. Once refused, every
 * accept counts again, so descriptors freed by closed connections let clients in at once.
 */
export function admitConnection(): boolean {
  if (untilCount > 0) {
    untilCount -= 1;
    return true;
  }
  const limit = descriptorLimit();
  const open = limit === null ? null : openDescriptors();
  if (limit === null || open === null) {
    // Nothing to count with: try again much later, in case /proc comes back (a chroot).
    untilCount = 1024;
    return true;
  }
  const headroom = limit - open - RESERVE;
  if (headroom < 0) return false;
  untilCount = Math.floor(headroom / 2);
  return true;
}

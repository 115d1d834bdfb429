import { readdirSync, readFileSync } from 'node:fs';

/**
 * R14a for runtimes built on uSockets (Bun, uWS). When accept(2) fails with EMFILE, uSockets' loop
 * tries again at once, for ever, without telling JavaScript: a server at its descriptor limit burns
 * a whole core (https://github.com/oven-sh/bun/pull/32705). So accepted connections must never
 * take the last descriptors: a backend asks `admitConnection()` for each connection its runtime has
 * accepted, and closes at once one that is refused (what libuv does at EMFILE for node:net), so
 * accept(2) itself never runs out. Connections are admitted again as soon as descriptors are free.
 *
 * The backend tells `releaseConnection()` when an admitted connection closes, so the connections
 * are counted exactly; the process's other descriptors (files, client sockets, sockets the runtime
 * accepted but has not handed over yet) are counted from /proc/self/fd, which costs one directory
 * read, only when the estimate says the limit is near, and each time a quarter of the headroom last
 * counted could be used up. Where /proc is missing, nothing is counted and every connection is
 * admitted.
 */
const RESERVE = 16;

/** Reading /proc takes a descriptor itself: at the limit it fails, and that is an answer too. */
class Exhausted extends Error {}

function readProc<T>(read: () => T): T | null {
  try {
    return read();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EMFILE' || code === 'ENFILE') throw new Exhausted();
    return null;
  }
}

/** The soft RLIMIT_NOFILE, or null when there is none or it cannot be read. */
function descriptorLimit(): number | null {
  const text = readProc(() => readFileSync('/proc/self/limits', 'utf8'));
  const limit = Number(text === null ? Number.NaN : /^Max open files\s+(\S+)/m.exec(text)?.[1]);
  return Number.isInteger(limit) && limit > 0 ? limit : null;
}

/** Open descriptors of this process, or null without /proc. */
function openDescriptors(): number | null {
  // readdir holds one descriptor of its own for the directory while it reads.
  const entries = readProc(() => readdirSync('/proc/self/fd'));
  return entries === null ? null : entries.length - 1;
}

let admitted = 0;
/** Open descriptors that are not admitted connections, as last counted; null: not counted yet. */
let others: number | null = null;
let limit: number | null = null;
/** Admissions before the next count even if the estimate is far from the limit. */
let untilCount = 0;

/**
 * For a connection the runtime has just accepted (its descriptor is open already): true if it may
 * stay, and then `releaseConnection()` must follow when it closes; false if the process is so near
 * its limit that it must be closed at once.
 */
export function admitConnection(): boolean {
  untilCount -= 1;
  const near = others === null || limit === null || admitted + 1 + others + RESERVE > limit;
  if (near || untilCount <= 0) {
    let open: number | null;
    try {
      limit = descriptorLimit();
      open = openDescriptors();
    } catch {
      // Not even a descriptor to count with (Exhausted).
      return false;
    }
    if (limit === null || open === null) {
      // Nothing to count with: admit, and count again later (/proc may come back, as in a chroot).
      others = null;
      admitted += 1;
      return true;
    }
    others = Math.max(0, open - admitted - 1);
    // Descriptors this count does not see coming (files, sockets the runtime has not handed over)
    // use up the headroom too: count again once a quarter of it could be gone.
    untilCount = Math.max(16, Math.floor((limit - open - RESERVE) / 4));
    if (open + RESERVE > limit) return false;
  }
  admitted += 1;
  return true;
}

/** A connection `admitConnection` admitted has closed: its descriptor is free. */
export function releaseConnection(): void {
  if (admitted > 0) admitted -= 1;
}

import { dlopen, FFIType, type Pointer, read } from 'bun:ffi';
import { constants } from 'node:os';
import process from 'node:process';

/** The libc calls Bun has no API for, reached through `bun:ffi`. */
interface Libc {
  listen(fd: number, backlog: number): number;
  errno(): number;
}

/** Where libc is and what its errno accessor is called, on the systems whose listen(2) can resize a listening socket's queue. */
function candidates(): { paths: string[]; errno: string } | null {
  const musl = process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
  switch (process.platform) {
    case 'linux':
      return { paths: ['libc.so.6', `libc.musl-${musl}.so.1`, 'libc.so'], errno: '__errno_location' };
    case 'darwin':
      return { paths: ['libc.dylib', '/usr/lib/libSystem.B.dylib'], errno: '__error' };
    case 'freebsd':
      return { paths: ['libc.so.7'], errno: '__error' };
    default:
      return null;
  }
}

let loaded: Libc | null | undefined;

/** libc, loaded on first use; null where it cannot be loaded (Windows, or a Bun built without FFI). */
export function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  const where = candidates();
  for (const path of where?.paths ?? []) {
    try {
      const lib = dlopen(path, {
        listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
        [where?.errno as string]: { args: [], returns: FFIType.ptr },
      });
      const listen = lib.symbols.listen as (fd: number, backlog: number) => number;
      const errnoLocation = lib.symbols[where?.errno as string] as () => Pointer | null;
      loaded = {
        listen,
        errno: () => {
          const at = errnoLocation();
          return at === null ? 0 : read.i32(at, 0);
        },
      };
      break;
    } catch {
      // Not this path: try the next one.
    }
  }
  return loaded;
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/**
 * Sets the kernel's listen queue of a socket that is already listening: on Linux, macOS and the
 * BSDs, listen(2) on a listening socket changes its backlog and nothing else. The kernel caps it at
 * its own maximum (net.core.somaxconn), so a huge value asks for the system default.
 * Returns false where libc is out of reach; throws with the errno's code if listen(2) fails.
 */
export function setListenBacklog(fd: number, backlog: number): boolean {
  const c = libc();
  if (c === null) return false;
  if (!Number.isInteger(fd) || fd < 0)
    throw new Error(`cannot set the listen backlog: the listener has no file descriptor (${fd})`);
  if (c.listen(fd, backlog) === 0) return true;
  const code = errnoName(c.errno());
  throw Object.assign(new Error(`listen(${fd}, ${backlog}) failed: ${code}`), { code, syscall: 'listen' });
}

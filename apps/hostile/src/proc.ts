import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { groupMembers } from '@comm/bench/children';

/** What Linux tells about a process through /proc: its memory, descriptors, CPU time and sockets. */

/** VmRSS in KiB, or null when the process is gone. */
export function rssKiB(pid: number): number | null {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** The number of open descriptors, or null when the process is gone. */
export function fdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** The fields of /proc/PID/stat after the command name (index 0 is the state, field 3). */
function statFields(pid: number): string[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of the whole process (every thread), in clock ticks (100 a second on Linux). */
export function cpuTicks(pid: number): number | null {
  const f = statFields(pid);
  return f ? Number(f[11]) + Number(f[12]) : null;
}

export const ticksPerSecond = 100;

/** The process group of a process, or null. */
function processGroup(pid: number): number | null {
  const f = statFields(pid);
  return f ? Number(f[2]) : null;
}

/** The inodes of sockets listening on `port` (IPv4 and IPv6). */
export function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === '0A') inodes.add(cols[9] as string);
    }
  }
  return inodes;
}

/** The process of the group that holds the socket listening on `port`: the runtime itself, whatever started it. */
export function listenerOf(pgid: number, port: number): number | null {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  for (const pid of groupMembers(pgid)) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
        if (m && inodes.has(m[1] as string)) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

export function isAlive(pid: number): boolean {
  const f = statFields(pid);
  return f !== null && f[0] !== 'Z' && processGroup(pid) !== null;
}

/** The hard limit of open descriptors of this process (what `ulimit -Hn` says). */
export function hardFdLimit(): number {
  try {
    const m = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+\d+\s+(\d+)/m);
    return m ? Number(m[1]) : 4096;
  } catch {
    return 4096;
  }
}

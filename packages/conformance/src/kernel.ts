/**
 * What the Linux kernel says about a TCP socket, whatever the JavaScript runtime's flags say.
 *
 * - The listen backlog and accept queue come from `ss` (sock_diag): the Send-Q of a LISTEN socket is
 *   its sk_max_ack_backlog, the Recv-Q its accept queue.
 * - TCP_NODELAY / SO_KEEPALIVE come from `kernel/sockopt.py`, which borrows the socket from the process
 *   that holds it (pidfd_getfd) and reads it with getsockopt.
 *
 * Only `node:` builtins, so the same code runs under Node, Bun and Deno (Deno needs --allow-run).
 */
import { execFile, execFileSync } from 'node:child_process';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/** Every child process gets this long before it is killed. */
const CHILD_TIMEOUT_MS = 5_000;

/** The script sits in `kernel/` at the package root; this module is in `src/` or `dist/`, one level below. */
const SOCKOPT_SCRIPT = fileURLToPath(new URL('../kernel/sockopt.py', import.meta.url));

const PYTHON = 'python3';

/** A socket's options as getsockopt reads them in the kernel. */
export interface KernelSocketOptions {
  /** IPPROTO_TCP TCP_NODELAY */
  nodelay: boolean;
  /** SOL_SOCKET SO_KEEPALIVE */
  keepalive: boolean;
  /** SOL_SOCKET SO_RCVBUF, in bytes (as the kernel reports it: doubled from what was set) */
  rcvbuf: number;
  /** SOL_SOCKET SO_SNDBUF, in bytes */
  sndbuf: number;
}

export interface SocketRef {
  /** The process that holds the socket (`process.pid` for one of ours). */
  pid: number;
  /** The socket's own port: for an accepted socket, the server's port. */
  localPort: number;
  /** The peer's port. */
  remotePort: number;
}

interface RunResult {
  stdout: string;
  stderr: string;
}

class ChildError extends Error {
  constructor(
    message: string,
    readonly missing: boolean,
  ) {
    super(message);
    this.name = 'ChildError';
  }
}

/** Runs a program (never a shell) with the timeout, resolving with its output if it exits 0. */
function run(file: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: CHILD_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8', windowsHide: true },
      (error, stdout, stderr) => {
        const out = String(stdout);
        const err = String(stderr);
        if (!error) {
          resolve({ stdout: out, stderr: err });
          return;
        }
        const command = [file, ...args].join(' ');
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          reject(new ChildError(`\`${file}\` is not installed (or not on PATH)`, true));
        } else if ((error as { killed?: boolean }).killed) {
          reject(new ChildError(`\`${command}\` did not finish within ${CHILD_TIMEOUT_MS / 1000} s`, false));
        } else {
          const detail = err.trim() || out.trim() || error.message;
          reject(new ChildError(`\`${command}\` failed: ${detail}`, false));
        }
      },
    );
  });
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${what}: not a TCP port: ${port}`);
  }
}

interface ListenRow {
  recvQ: number;
  sendQ: number;
  local: string;
}

/** The LISTEN sockets on `port` in this network namespace, as `ss -Hltn 'sport = :PORT'` shows them. */
async function listenRows(port: number, what: string): Promise<ListenRow[]> {
  checkPort(port, what);
  const { stdout } = await run('ss', ['-Hltn', 'sport', '=', `:${port}`]);
  const rows: ListenRow[] = [];
  for (const line of stdout.split('\n')) {
    // State Recv-Q Send-Q Local-Address:Port Peer-Address:Port [Process]
    const fields = line.trim().split(/\s+/);
    const [state, recvQ, sendQ, local] = fields;
    if (state !== 'LISTEN' || recvQ === undefined || sendQ === undefined || local === undefined) continue;
    if (!local.endsWith(`:${port}`)) continue;
    const row = { recvQ: Number(recvQ), sendQ: Number(sendQ), local };
    if (!Number.isInteger(row.recvQ) || !Number.isInteger(row.sendQ)) {
      throw new Error(`${what}: cannot read this line of \`ss -Hltn\`: ${line.trim()}`);
    }
    rows.push(row);
  }
  if (rows.length === 0) {
    throw new Error(`${what}: no socket is listening on TCP port ${port} (as \`ss -Hltn\` sees it)`);
  }
  return rows;
}

/** How many sockets listen on `port` (several with SO_REUSEPORT, R20), as `ss -Hltn` shows them. */
export async function listeningSockets(port: number): Promise<number> {
  return (await listenRows(port, 'listeningSockets')).length;
}

/**
 * The backlog the kernel applies to the socket listening on `port` (sk_max_ack_backlog: the Send-Q
 * column of `ss -ltn`), after any clamping to net.core.somaxconn.
 * Throws if nothing listens there, or if several listening sockets there disagree.
 */
export async function listenBacklog(port: number): Promise<number> {
  const rows = await listenRows(port, 'listenBacklog');
  const values = new Set(rows.map((row) => row.sendQ));
  if (values.size > 1) {
    const listing = rows.map((row) => `${row.local} backlog ${row.sendQ}`).join(', ');
    throw new Error(
      `listenBacklog: several sockets listen on TCP port ${port} with different backlogs: ${listing}`,
    );
  }
  return rows[0]?.sendQ ?? 0;
}

/**
 * How many connections on `port` the kernel has completed that the server has not accepted yet
 * (the Recv-Q column of `ss -ltn` for the LISTEN socket; summed if several sockets listen there,
 * e.g. one for IPv4 and one for IPv6). Throws if nothing listens there.
 */
export async function acceptQueueLength(port: number): Promise<number> {
  const rows = await listenRows(port, 'acceptQueueLength');
  return rows.reduce((sum, row) => sum + row.recvQ, 0);
}

function parseOptions(stdout: string, ref: SocketRef): KernelSocketOptions {
  const where = `socket ${ref.localPort}->${ref.remotePort} of process ${ref.pid}`;
  let data: unknown;
  try {
    data = JSON.parse(stdout.trim());
  } catch {
    throw new Error(`socketOptions: sockopt.py printed no JSON for ${where}: ${stdout.trim()}`);
  }
  const record = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const { nodelay, keepalive, rcvbuf, sndbuf } = record;
  if (
    typeof nodelay !== 'boolean' ||
    typeof keepalive !== 'boolean' ||
    typeof rcvbuf !== 'number' ||
    typeof sndbuf !== 'number'
  ) {
    throw new Error(`socketOptions: unexpected answer from sockopt.py for ${where}: ${stdout.trim()}`);
  }
  return { nodelay, keepalive, rcvbuf, sndbuf };
}

/**
 * TCP_NODELAY and SO_KEEPALIVE (and the buffer sizes) of one connected TCP socket, read from the
 * kernel: the socket of process `pid` whose local port is `localPort` and whose peer's port is
 * `remotePort`. Both ends of a loopback connection may live in one process; the ports tell them apart.
 * Needs python3 and ptrace access to `pid` (root, or the same user); see `kernelToolsAvailable`.
 */
export async function socketOptions(ref: SocketRef): Promise<KernelSocketOptions> {
  if (!Number.isInteger(ref.pid) || ref.pid < 1) throw new RangeError(`socketOptions: not a pid: ${ref.pid}`);
  checkPort(ref.localPort, 'socketOptions');
  checkPort(ref.remotePort, 'socketOptions');
  let result: RunResult;
  try {
    result = await run(PYTHON, [
      SOCKOPT_SCRIPT,
      '--pid',
      String(ref.pid),
      '--local-port',
      String(ref.localPort),
      '--remote-port',
      String(ref.remotePort),
    ]);
  } catch (error) {
    throw new Error(`socketOptions: ${(error as Error).message}`);
  }
  return parseOptions(result.stdout, ref);
}

/**
 * Null if this machine can give the kernel's view (Linux, `ss`, `python3` >= 3.9, and pidfd_getfd
 * allowed on this process); otherwise one sentence saying what is missing, fit to print as the
 * reason for skipping the kernel checks.
 */
export async function kernelToolsAvailable(): Promise<string | null> {
  if (process.platform !== 'linux') {
    return `the kernel checks need Linux, and this is ${process.platform}.`;
  }
  const problems: string[] = [];
  const ss = run('ss', ['-V']).then(
    () => null,
    (error: ChildError) => (error.missing ? '`ss` (iproute2) is not installed' : error.message),
  );
  const python = run(PYTHON, [
    '-c',
    'import os, sys; sys.exit(0 if sys.version_info >= (3, 9) and hasattr(os, "pidfd_open") else 1)',
  ]).then(
    async () => {
      try {
        await run(PYTHON, [SOCKOPT_SCRIPT, '--self-test', '--pid', String(process.pid)]);
        return null;
      } catch (error) {
        const message = (error as Error).message.replace(/^.*?failed: (sockopt\.py: )?/s, '');
        return `pidfd_getfd does not work here (${message})`;
      }
    },
    (error: ChildError) =>
      error.missing ? '`python3` is not installed' : '`python3` is older than 3.9 (no os.pidfd_open)',
  );
  for (const problem of await Promise.all([ss, python])) {
    if (problem !== null) problems.push(problem);
  }
  if (problems.length === 0) return null;
  return `cannot read socket state from the kernel: ${problems.join('; ')}.`;
}

/**
 * One connected TCP socket's counters as the kernel keeps them (`ss -tin`, from tcp_info), for
 * the flow rules: how many bytes the process has handed to the socket, how many segments carried
 * them.
 */
export interface TcpCounters {
  /** The state `ss` names: `ESTAB`, `FIN-WAIT-1`, `CLOSE-WAIT`... */
  state: string;
  /** Bytes received and not yet read by the process (rcv_nxt - copied_seq). */
  recvQ: number;
  /** Bytes written by the process and not yet acknowledged by the peer (write_seq - snd_una), sent or not. */
  sendQ: number;
  /** Bytes the peer has acknowledged (tcpi_bytes_acked). */
  bytesAcked: number;
  /** Bytes received from the peer (tcpi_bytes_received). */
  bytesReceived: number;
  /** Segments sent that carried data, retransmissions included (tcpi_data_segs_out). */
  dataSegsOut: number;
  /** Segments sent, pure ACKs included (tcpi_segs_out). */
  segsOut: number;
  /** Bytes retransmitted (tcpi_bytes_retrans). */
  bytesRetrans: number;
}

/**
 * Every byte the process has handed to this socket so far (`bytesAcked + sendQ`): what the kernel
 * has taken, whether it has sent it yet or not.
 */
export function kernelTaken(counters: TcpCounters): number {
  return counters.bytesAcked + counters.sendQ;
}

function ssArgs(ref: Omit<SocketRef, 'pid'>): string[] {
  checkPort(ref.localPort, 'tcpCounters');
  checkPort(ref.remotePort, 'tcpCounters');
  // -a: a socket that has sent its FIN (FIN-WAIT, CLOSING) still has its counters.
  return ['-Htina', `( sport = :${ref.localPort} and dport = :${ref.remotePort} )`];
}

function parseCounters(stdout: string, ref: Omit<SocketRef, 'pid'>): TcpCounters {
  const where = `the TCP socket ${ref.localPort}->${ref.remotePort}`;
  // One socket is two lines: `State Recv-Q Send-Q Local Peer`, then its tcp_info as `key:value`s.
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  const rows: string[][] = [];
  for (const line of lines) {
    if (/^\s/.test(line) && rows.length > 0) (rows[rows.length - 1] as string[]).push(line.trim());
    else rows.push([line.trim()]);
  }
  const live = rows.filter((row) => !(row[0] as string).startsWith('TIME-WAIT'));
  if (live.length !== 1) {
    throw new Error(
      `tcpCounters: \`ss -tin\` shows ${live.length} sockets for ${where}, not one: ${stdout.trim() || '(nothing)'}`,
    );
  }
  const [head = '', info = ''] = live[0] as string[];
  const [state = '', recvQ, sendQ] = head.split(/\s+/);
  const field = (name: string): number => {
    // A counter that is still 0 is left out of ss's output.
    const match = new RegExp(`(?:^|\\s)${name}:(\\d+)`).exec(info);
    return match ? Number(match[1]) : 0;
  };
  const counters: TcpCounters = {
    state,
    recvQ: Number(recvQ),
    sendQ: Number(sendQ),
    bytesAcked: field('bytes_acked'),
    bytesReceived: field('bytes_received'),
    dataSegsOut: field('data_segs_out'),
    segsOut: field('segs_out'),
    bytesRetrans: field('bytes_retrans'),
  };
  if (!Number.isInteger(counters.recvQ) || !Number.isInteger(counters.sendQ)) {
    throw new Error(`tcpCounters: cannot read this line of \`ss -tin\` for ${where}: ${head}`);
  }
  return counters;
}

/**
 * The kernel's counters of the TCP socket in this network namespace whose local port is
 * `localPort` and whose peer's port is `remotePort` (for a server's accepted socket: the server's
 * port and the client's). Throws unless exactly one such socket (not in TIME-WAIT) exists.
 */
export async function tcpCounters(ref: Omit<SocketRef, 'pid'>): Promise<TcpCounters> {
  const { stdout } = await run('ss', ssArgs(ref));
  return parseCounters(stdout, ref);
}

/**
 * `tcpCounters`, read synchronously: the event loop does not turn while `ss` runs, so nothing the
 * process does in JavaScript can reach the socket between the call and the answer.
 */
export function tcpCountersSync(ref: Omit<SocketRef, 'pid'>): TcpCounters {
  let stdout: string;
  try {
    stdout = execFileSync('ss', ssArgs(ref), {
      timeout: CHILD_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    throw new Error(`tcpCounters: \`ss ${ssArgs(ref).join(' ')}\` failed: ${(error as Error).message}`);
  }
  return parseCounters(stdout, ref);
}

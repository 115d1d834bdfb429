import { type Child, groupMembers, killGroup, startChild } from '@comm/bench/children';
import { cpuTicks, fdCount, isAlive, listeningInodes, rssKiB, ticksPerSecond } from './proc.js';
import { limits, type Scenario } from './scenarios.js';
import {
  type BackendName,
  clientScript,
  repoRoot,
  rssSampler,
  type Server,
  settledFds,
  sleep,
  startServer,
  transportOf,
} from './server.js';

/** What the Python client reports (the last line of its stdout, `RESULT {json}`). */
export interface ClientResult {
  ok: boolean;
  correct: number;
  total: number;
  note: string;
  seconds: number;
  [figure: string]: unknown;
}

/** One scenario on one backend: the table's row. */
export interface Row {
  readonly backend: BackendName;
  readonly scenario: Scenario;
  status: 'ok' | 'FAIL' | 'n/a';
  seconds: number | null;
  replies: string;
  rssBefore: number | null;
  rssPeak: number | null;
  rssAfter: number | null;
  fdsBefore: number | null;
  fdsAfter: number | null;
  note: string;
  /** Why it is FAIL (empty when ok). */
  failures: string[];
  /** Lines the server wrote to stderr during the scenario. */
  stderrLines: number;
}

/** Runs the Python client for one scenario; `onMarker` gets each stdout line before the result. */
export async function runClient(
  name: string,
  port: number,
  ws: boolean,
  params: Record<string, number | string>,
  timeoutMs: number,
  onMarker?: (line: string) => void,
): Promise<ClientResult> {
  const child = startChild('python3', [
    clientScript,
    name,
    String(port),
    ws ? '1' : '0',
    JSON.stringify(params),
  ]);
  let seen = 0;
  const markers = setInterval(() => {
    const lines = child.output().split('\n');
    for (; seen < lines.length - 1; seen++) {
      const line = lines[seen] as string;
      if (!line.startsWith('RESULT ')) onMarker?.(line);
    }
  }, 20);
  const timer = setTimeout(() => void child.stop(1000), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  clearInterval(markers);
  await child.stop(500); // anything it left in its group
  const line = child
    .output()
    .split('\n')
    .find((l) => l.startsWith('RESULT '));
  if (!line) {
    const why = code === 143 || code === 137 ? `timed out after ${timeoutMs / 1000} s` : `exited ${code}`;
    return {
      ok: false,
      correct: 0,
      total: 0,
      note: `client ${why}: ${child.errors().trim().slice(-200)}`,
      seconds: 0,
    };
  }
  return JSON.parse(line.slice('RESULT '.length)) as ClientResult;
}

const mib = (kib: number | null) => (kib === null ? null : kib / 1024);

/** A fresh client, tried `attempts` times half a second apart. */
async function freshClient(server: Server, attempts = 3): Promise<ClientResult> {
  return runClient(
    'probe',
    server.port,
    transportOf(server.backend) === 'ws',
    { attempts, pause: 0.5, timeout: 5 },
    attempts * 6000 + 10_000,
  );
}

/** Descriptors back to at most `target`, waited for up to `maxMs`; the count then. */
async function fdsBackTo(pid: number, target: number, maxMs: number): Promise<number | null> {
  const until = Date.now() + maxMs;
  let now = fdCount(pid);
  while (now !== null && now > target && Date.now() < until) {
    await sleep(100);
    now = fdCount(pid);
  }
  return now;
}

/** One scenario on a fresh server of `backend`. */
export async function runScenario(backend: BackendName, scenario: Scenario, short: boolean): Promise<Row> {
  const row: Row = {
    backend,
    scenario,
    status: 'ok',
    seconds: null,
    replies: '',
    rssBefore: null,
    rssPeak: null,
    rssAfter: null,
    fdsBefore: null,
    fdsAfter: null,
    note: '',
    failures: [],
    stderrLines: 0,
  };
  const na = scenario.notApplicable?.(backend);
  if (na) {
    row.status = 'n/a';
    row.note = na;
    return row;
  }
  const fail = (why: string) => row.failures.push(why);
  let server: Server;
  try {
    server = await startServer(backend, scenario.fdLimit);
  } catch (error) {
    fail(`server did not start: ${(error as Error).message.slice(0, 200)}`);
    row.status = 'FAIL';
    return row;
  }
  const { pid, port } = server;
  const ws = transportOf(backend) === 'ws';
  const stderrBefore = () => server.child.errors();
  let sampler: ReturnType<typeof rssSampler> | null = null;
  try {
    const warm = await freshClient(server, 1);
    if (!warm.ok) fail(`no answer before the scenario: ${warm.note}`);
    row.fdsBefore = await settledFds(pid);
    row.rssBefore = mib(rssKiB(pid));
    const errorsBefore = stderrBefore().length;
    sampler = rssSampler(pid);
    const notes: string[] = [];
    let measuring: Promise<void> = Promise.resolve();
    let terminated: Promise<number> | null = null;
    const onMarker = (line: string) => {
      if (scenario.name === 'emfile' && line.startsWith('HOLDING')) {
        measuring = (async () => {
          const fds = fdCount(pid);
          const t0 = cpuTicks(pid);
          const started = Date.now();
          await sleep(limits.emfileWindowMs);
          const t1 = cpuTicks(pid);
          if (t0 === null || t1 === null) {
            fail('the server died at the descriptor limit');
            return;
          }
          const percent = ((t1 - t0) / ticksPerSecond / ((Date.now() - started) / 1000)) * 100;
          notes.push(`CPU ${percent.toFixed(1)}% at ${fds}/${server.fdLimit} fds`);
          if (percent >= limits.emfileCpuPercent)
            fail(`CPU ${percent.toFixed(1)}% at the descriptor limit (limit ${limits.emfileCpuPercent}%)`);
        })();
      }
      if (scenario.name === 'sigterm' && line.startsWith('LOADED') && terminated === null) {
        terminated = (async () => {
          await sleep(1000);
          process.kill(pid, 'SIGTERM');
          return server.child.exited;
        })();
      }
    };
    const result = await runClient(
      scenario.client,
      port,
      ws,
      scenario.params(short),
      scenario.timeoutMs(short),
      onMarker,
    );
    await measuring;
    row.seconds = result.seconds;
    row.replies = result.total > 0 || result.correct > 0 ? `${result.correct}/${result.total}` : '-';
    if (!result.ok) fail(`client: ${result.note}`);
    notes.unshift(result.note);

    if (scenario.name === 'sigterm') {
      const exited = terminated ?? Promise.resolve(-1);
      const code = await Promise.race([exited, sleep(limits.exitMs).then(() => null)]);
      if (terminated === null) fail('the load never started: no SIGTERM sent');
      else if (code === null) fail(`still running ${limits.exitMs / 1000} s after SIGTERM`);
      else if (code !== 0) fail(`exit code ${code} after SIGTERM`);
      else notes.push('exit 0');
      await sleep(100);
      if (listeningInodes(port).size > 0) fail(`port ${port} still listening after the exit`);
      const left = groupMembers(server.child.pid);
      if (left.length > 0) fail(`processes left behind: ${left.join(' ')}`);
      else if (code === 0) notes.push('port free');
    } else {
      if (!isAlive(pid)) fail('the server died');
      else {
        // At the limit, accepting must resume by itself once the clients are gone: allow 10 s.
        const fresh = await freshClient(server, scenario.name === 'emfile' ? 20 : 3);
        if (!fresh.ok) fail(`a fresh client is not served: ${fresh.note}`);
        else if (fresh.note) notes.push(`fresh client ${fresh.note}`);
        const before = row.fdsBefore ?? 0;
        row.fdsAfter = await fdsBackTo(pid, before + limits.fdSlack, short ? 8000 : 15_000);
        if (row.fdsAfter !== null && row.fdsAfter > before + limits.fdSlack)
          fail(`fds ${row.fdsAfter} after, ${before} before`);
        row.rssAfter = mib(rssKiB(pid));
      }
    }
    row.rssPeak = mib(sampler.stop());
    if (
      (scenario.name === 'no-reader' || scenario.name === 'long-line') &&
      row.rssPeak !== null &&
      row.rssBefore !== null &&
      row.rssPeak - row.rssBefore > limits.rssGrowthMiB
    )
      fail(`RSS grew by ${(row.rssPeak - row.rssBefore).toFixed(0)} MiB (limit ${limits.rssGrowthMiB})`);
    row.stderrLines = stderrBefore().slice(errorsBefore).split('\n').filter(Boolean).length;
    row.note = notes.filter(Boolean).join('; ');
  } catch (error) {
    fail(`harness: ${(error as Error).stack ?? error}`);
  } finally {
    sampler?.stop();
    await stopServer(server.child);
    const left = groupMembers(server.child.pid);
    if (left.length > 0) {
      fail(`processes left behind after stopping: ${left.join(' ')}`);
      killGroup(server.child.pid, 'SIGKILL');
    }
  }
  row.status = row.failures.length > 0 ? 'FAIL' : 'ok';
  return row;
}

async function stopServer(child: Child): Promise<void> {
  await child.stop(3000);
}

export interface SuiteOptions {
  readonly backends: readonly BackendName[];
  readonly scenarios: readonly Scenario[];
  readonly short: boolean;
  /** Called with each row as it is done (progress). */
  readonly onRow?: (row: Row) => void;
}

/** Every scenario on every backend, each on its own fresh server. */
export async function runSuite(options: SuiteOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const backend of options.backends)
    for (const scenario of options.scenarios) {
      const row = await runScenario(backend, scenario, options.short);
      rows.push(row);
      options.onRow?.(row);
    }
  return rows;
}

export { repoRoot };

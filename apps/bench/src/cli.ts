import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { type Certificates, makeCertificates } from '@comm/talk/certs';
import { killAll, run } from './children.js';
import { fail, type Positive, parseFlags, positiveFlag } from './flags.js';
import { idle, load, type Pinning, pinningFor, type Server, startServer, statOf } from './measure.js';
import {
  type Deviation,
  type IdleCell,
  type IdleSide,
  idleTargets,
  median,
  medianStat,
  type Proof,
  type Report,
  type ScalingCell,
  type Side,
  type Stat,
  type SubjectResult,
  type ThroughputCell,
  type ThroughputWorkload,
  TLS_CASE,
  throughputTargets,
  tlsUnsupported,
  type WorkloadName,
  workloadNames,
  workloadSpecs,
} from './model.js';
import { benchDir, compilerVersion, nativeBinary, repoRoot } from './native.js';
import { notes, rows, scalingRows, summaryRows, svg, table } from './report.js';
import { scalingCell } from './scaling.js';
import { bareCommand, deviationsCommand, resolveSubjects, type Subject, talkCommand } from './subjects.js';

const usage = `usage: pnpm bench [-- options]      (or: node apps/bench/dist/cli.js [options])

Each backend's talk server (apps/talk) against the same protocol written directly on its runtime,
side by side in alternating rounds, driven by a C load generator (epoll, one thread) pinned to
another CPU. Progress on stderr, the table on stdout, JSON and an SVG chart in the results folder.

  --backends LIST    node,bun,deno,uws (default). node is every Node line installed (node@20,
                     node@24, node@26); name one as node@24. uws runs on the system's Node.
  --workloads LIST   rr,pipelined,1k,tls-rr,tls-pipelined,idle,scaling,connect (default: all)
                       rr         request/response: a line, its reply, the next line
                       pipelined  16 lines in flight per connection
                       1k         1 KiB lines, 16 in flight per connection
                       tls-rr, tls-pipelined
                                  rr and pipelined over TLS: the talk server with --tls-cert and
                                  --tls-key against the runtime's own TLS server (node:tls,
                                  Bun.listen tls, Deno.listenTls, uWS SSLApp); a certificate made
                                  with openssl for the run, verified by the load generator;
                                  handshakes before the clock. A backend that declares
                                  R22.talk-over-tls has no figures there
                       idle       RSS per idle connection, --idle connections each after one reply
                       scaling    the talk server as 1 worker against 2 sharing a port with
                                  reuseport (2 workers' throughput / 1 worker's), unpinned; the
                                  kernel must show both listening and both must serve, else the
                                  row is a fault and the bench exits 1. Only this row:
                                  --workloads scaling
                       connect    connections per second: connect, a line, its reply, close
  --rounds N         rounds per workload, talk and bare alternating (default 3); figures are medians
  --seconds S        seconds per measured round (default 3)
  --warmup S         seconds of warm-up per server and workload before the rounds (default 1)
  --connections N    concurrent connections (default 50; the scaling row has its own)
  --idle N           idle connections (default 10000)
  --idle-timeout S   seconds the idle connections may take to open; a server slower than that is
                     measured on those it opened, and the table says so (default 120)
  --scaling-load W   the load of the scaling row: rr, pipelined or 1k (default pipelined)
  --scaling-connections N
                     its concurrent connections, for the kernel to spread (default 256)
  --out DIR          results folder (default apps/bench/results)
  --smoke            tiny everything (1 round of 0.3 s, 4 connections, 50 idle, 32 for scaling):
                     checks that it runs
  --help, -h         prints this text
A value may also be given as --NAME=VALUE.`;

interface Options {
  backends: string[];
  workloads: WorkloadName[];
  rounds: number;
  seconds: number;
  warmup: number;
  connections: number;
  idle: number;
  idleTimeout: number;
  scalingLoad: ThroughputWorkload;
  scalingConnections: number;
  out: string;
  smoke: boolean;
}

/** The certificates of the TLS rows: made once per run with openssl, removed at exit. */
let certificates: Certificates | null = null;
process.on('exit', () => certificates?.remove());

function tlsCertificates(): Certificates {
  certificates ??= makeCertificates('comm-bench-tls-');
  return certificates;
}

function parseOptions(argv: readonly string[]): Options {
  const { values, booleans } = parseFlags(argv, {
    usage,
    valued: [
      'backends',
      'workloads',
      'rounds',
      'seconds',
      'warmup',
      'connections',
      'idle',
      'idle-timeout',
      'scaling-load',
      'scaling-connections',
      'out',
    ],
    booleans: ['smoke'],
  });
  const smoke = booleans.has('smoke');
  const number = (name: string, fallback: number, kind: Positive) =>
    positiveFlag(usage, values, name, fallback, kind);
  const list = (name: string, fallback: string) =>
    (values.get(name) ?? fallback)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const workloads = list('workloads', workloadNames.join(','));
  for (const w of workloads)
    if (!(workloadNames as readonly string[]).includes(w)) fail(usage, `unknown workload "${w}"`);
  const scalingLoad = values.get('scaling-load') ?? 'pipelined';
  if (!['rr', 'pipelined', '1k'].includes(scalingLoad))
    fail(usage, `--scaling-load must be rr, pipelined or 1k, not "${scalingLoad}"`);
  return {
    backends: list('backends', 'node,bun,deno,uws'),
    workloads: workloadNames.filter((w) => workloads.includes(w)),
    rounds: number('rounds', smoke ? 1 : 3, 'integer'),
    seconds: number('seconds', smoke ? 0.3 : 3, 'number'),
    warmup: number('warmup', smoke ? 0.1 : 1, 'number'),
    connections: number('connections', smoke ? 4 : 50, 'integer'),
    idle: number('idle', smoke ? 50 : 10_000, 'integer'),
    idleTimeout: number('idle-timeout', smoke ? 30 : 120, 'number'),
    scalingLoad: scalingLoad as ThroughputWorkload,
    scalingConnections: number('scaling-connections', smoke ? 32 : 256, 'integer'),
    out: resolve(values.get('out') ?? join(benchDir, 'results')),
    smoke,
  };
}

const started = Date.now();
function progress(message: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${message}\n`);
}

function describe(s: Stat | { error: string }, unit: string): string {
  if ('error' in s) return `error: ${s.error}`;
  if (s.perSecond === 0) return `none completed${s.errors ? `, ${s.errors} errors` : ''}`;
  const problems = s.errors || s.wrongReplies ? `, ${s.errors} errors, ${s.wrongReplies} wrong replies` : '';
  return `${Math.round(s.perSecond)} ${unit}, p50 ${(s.p50Us / 1000).toFixed(2)} ms, p99 ${(s.p99Us / 1000).toFixed(2)} ms${problems}`;
}

async function measureRound(
  server: Server,
  transport: 'tcp' | 'ws',
  workload: ThroughputWorkload,
  options: Options,
  pinning: Pinning,
  seconds: number,
): Promise<Stat | { error: string }> {
  if (!server.child.alive())
    return { error: `${server.label} has exited: ${server.child.errors().trim().slice(-300)}` };
  const spec = workloadSpecs[workload];
  try {
    const result = await load(
      server.port,
      transport,
      {
        mode: spec.mode,
        connections: options.connections,
        depth: spec.depth,
        lineBytes: spec.lineBytes,
        seconds,
        warmup: 0,
        tls: spec.overTls ? { ca: tlsCertificates().ca } : null,
      },
      pinning,
    );
    if (spec.overTls && !result.tls) return { error: 'the load generator did not talk TLS' };
    if (spec.overTls && result.perSecond > 0 && !result.tlsSession)
      return { error: 'replies came, but no TLS handshake finished' };
    if (result.perSecond === 0 && result.errors > 0)
      return { error: `${result.errors} connection errors, no replies` };
    return statOf(result);
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** Rounds of one workload on two servers, alternating which goes first. */
async function alternate(
  name: string,
  servers: { comm: Server; bare: Server },
  transport: 'tcp' | 'ws',
  workload: ThroughputWorkload,
  options: Options,
  pinning: Pinning,
): Promise<ThroughputCell> {
  const unit = workloadSpecs[workload].unit;
  progress(`${name} ${workload}: warm-up`);
  await measureRound(servers.comm, transport, workload, options, pinning, options.warmup);
  await measureRound(servers.bare, transport, workload, options, pinning, options.warmup);
  const comm: Side = { rounds: [], median: null };
  const bare: Side = { rounds: [], median: null };
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? (['comm', 'bare'] as const) : (['bare', 'comm'] as const);
    for (const which of order) {
      const result = await measureRound(
        servers[which],
        transport,
        workload,
        options,
        pinning,
        options.seconds,
      );
      (which === 'comm' ? comm : bare).rounds.push(result);
      progress(
        `${name} ${workload} round ${round + 1}/${options.rounds} ${which === 'comm' ? 'talk' : 'bare'}: ${describe(result, unit)}`,
      );
    }
  }
  comm.median = medianStat(comm.rounds);
  bare.median = medianStat(bare.rounds);
  const ratio = {
    throughput:
      comm.median && bare.median && bare.median.perSecond > 0
        ? comm.median.perSecond / bare.median.perSecond
        : null,
    // No reply, no latency: a p99 of 0 is no figure.
    p99:
      comm.median &&
      bare.median &&
      comm.median.perSecond > 0 &&
      bare.median.perSecond > 0 &&
      bare.median.p99Us > 0
        ? comm.median.p99Us / bare.median.p99Us
        : null,
  };
  const partial = { kind: 'throughput' as const, workload, comm, bare, ratio };
  return { ...partial, targets: throughputTargets(partial) };
}

async function idleCell(subject: Subject, options: Options, pinning: Pinning): Promise<IdleCell> {
  const comm: IdleSide = { rounds: [], kibPerConnection: null };
  const bare: IdleSide = { rounds: [], kibPerConnection: null };
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? (['comm', 'bare'] as const) : (['bare', 'comm'] as const);
    for (const which of order) {
      const label = `${subject.name} ${which === 'comm' ? 'talk' : 'bare'} server`;
      let server: Server | null = null;
      try {
        // A fresh server for each count, up and warmed with a few connections first.
        server = await startServer(
          label,
          which === 'comm' ? talkCommand(subject) : bareCommand(subject),
          pinning,
        );
        await measureRound(
          server,
          subject.transport,
          'rr',
          { ...options, connections: Math.min(options.connections, 10) },
          pinning,
          options.smoke ? 0.1 : 0.5,
        );
        await new Promise((r) => setTimeout(r, 300));
        const result = await idle(server, subject.transport, options.idle, options.idleTimeout, pinning);
        (which === 'comm' ? comm : bare).rounds.push(result);
        progress(
          `${subject.name} idle round ${round + 1}/${options.rounds} ${which === 'comm' ? 'talk' : 'bare'}: ${result.established}/${result.connections} connections in ${result.openSeconds.toFixed(1)} s, RSS ${Math.round(result.rssBeforeKiB / 1024)} -> ${Math.round(result.rssAfterKiB / 1024)} MiB, ${result.kibPerConnection.toFixed(2)} KiB/conn`,
        );
      } catch (error) {
        (which === 'comm' ? comm : bare).rounds.push({ error: (error as Error).message });
        progress(`${subject.name} idle round ${round + 1} ${which}: error: ${(error as Error).message}`);
      } finally {
        await server?.child.stop();
      }
    }
  }
  const perConn = (side: IdleSide) => {
    const ok = side.rounds.filter((r) => !('error' in r) && r.established > 0) as {
      kibPerConnection: number;
    }[];
    return ok.length ? median(ok.map((r) => r.kibPerConnection)) : null;
  };
  comm.kibPerConnection = perConn(comm);
  bare.kibPerConnection = perConn(bare);
  const ratio =
    comm.kibPerConnection !== null && bare.kibPerConnection
      ? comm.kibPerConnection / bare.kibPerConnection
      : null;
  return {
    kind: 'idle',
    workload: 'idle',
    connections: options.idle,
    comm,
    bare,
    ratio,
    targets: idleTargets(comm.kibPerConnection, ratio),
  };
}

/** Sockets in TIME_WAIT on this machine (/proc/net/sockstat), or null. */
function socketsInTimeWait(): number | null {
  try {
    const match = readFileSync('/proc/net/sockstat', 'utf8').match(/^TCP:.* tw (\d+)/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** The subject's declared deviations, from its backend package in its runtime. */
async function deviationsOf(subject: Subject): Promise<Deviation[] | null> {
  const dev = await run(...deviationsCommand(subject), 30_000);
  try {
    return JSON.parse(dev.stdout.trim().split('\n').pop() ?? '') as Deviation[];
  } catch {
    progress(`${subject.name}: could not read the declared deviations: ${dev.stderr.trim().slice(-300)}`);
    return null;
  }
}

/**
 * One throughput workload on one subject: its talk server and its bare server, fresh, side by
 * side. A TLS workload on a backend that declares it cannot serve TLS is a row without figures.
 */
async function throughputCell(
  subject: Subject,
  workload: ThroughputWorkload,
  options: Options,
  pinning: Pinning,
  deviations: Deviation[] | null,
): Promise<ThroughputCell> {
  const overTls = workloadSpecs[workload].overTls;
  const unsupported = tlsUnsupported(workload, deviations);
  if (unsupported !== null) {
    progress(`${subject.name} ${workload}: not measured: ${subject.backend} declares ${TLS_CASE}`);
    const partial = {
      kind: 'throughput' as const,
      workload,
      comm: { rounds: [], median: null },
      bare: { rounds: [], median: null },
      ratio: { throughput: null, p99: null },
    };
    return {
      ...partial,
      targets: throughputTargets(partial),
      tls: true,
      unsupported,
    };
  }
  let comm: Server | null = null;
  let bare: Server | null = null;
  try {
    progress(
      `${subject.name} ${workload}: starting the talk server (${subject.runtime}) and the bare ${subject.backend} server${overTls ? ', both over TLS' : ''}`,
    );
    const timeWait = socketsInTimeWait();
    const tls = overTls ? tlsCertificates() : null;
    comm = await startServer(`${subject.name} talk server`, talkCommand(subject, tls), pinning);
    bare = await startServer(`${subject.name} bare server`, bareCommand(subject, tls), pinning);
    const cell = await alternate(subject.name, { comm, bare }, subject.transport, workload, options, pinning);
    return { ...cell, timeWaitAtStart: timeWait, ...(overTls ? { tls: true } : {}) };
  } catch (error) {
    const message = (error as Error).message;
    progress(`${subject.name} ${workload}: ${message}`);
    const side = (): Side => ({ rounds: [{ error: message }], median: null });
    const partial = {
      kind: 'throughput' as const,
      workload,
      comm: side(),
      bare: side(),
      ratio: { throughput: null, p99: null },
    };
    return { ...partial, targets: throughputTargets(partial), ...(overTls ? { tls: true } : {}) };
  } finally {
    await comm?.child.stop();
    await bare?.child.stop();
  }
}

/** The reference server (C) on one workload: how fast the load generator can drive a server. */
async function measureReference(
  workload: ThroughputWorkload,
  transports: ('tcp' | 'ws')[],
  options: Options,
  pinning: Pinning,
): Promise<Partial<Record<'tcp' | 'ws', Side>>> {
  const byTransport: Partial<Record<'tcp' | 'ws', Side>> = {};
  progress(`reference ${workload}: the C server, how fast the load generator can drive a server`);
  let server: Server | null = null;
  try {
    const tls = workloadSpecs[workload].overTls ? tlsCertificates() : null;
    server = await startServer(
      `reference server${tls ? ' (TLS)' : ''}`,
      [
        nativeBinary('refserver'),
        ['--backlog', '4096', '--spin', ...(tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [])],
      ],
      pinning,
    );
    for (const transport of transports) {
      await measureRound(server, transport, workload, options, pinning, options.warmup);
      const side: Side = { rounds: [], median: null };
      for (let round = 0; round < options.rounds; round++)
        side.rounds.push(await measureRound(server, transport, workload, options, pinning, options.seconds));
      side.median = medianStat(side.rounds);
      byTransport[transport] = side;
      progress(
        `reference ${workload} (${transport}): ${side.median ? describe(side.median, workloadSpecs[workload].unit) : 'error'}`,
      );
    }
  } catch (error) {
    progress(`reference ${workload}: ${(error as Error).message}`);
  } finally {
    await server?.child.stop();
  }
  return byTransport;
}

function proofs(report: Report): Proof[] {
  const out: Proof[] = [];
  for (const [workload, byTransport] of Object.entries(report.loadgen.reference) as [
    ThroughputWorkload,
    Partial<Record<'tcp' | 'ws', Side>>,
  ][])
    for (const [transport, side] of Object.entries(byTransport) as ['tcp' | 'ws', Side][]) {
      let fastest: Proof['fastest'] = null;
      let busy: number | null = null;
      for (const s of report.subjects.filter((s) => s.transport === transport))
        for (const cell of s.cells)
          if (cell.kind === 'throughput' && cell.workload === workload)
            for (const [which, m] of [
              ['talk', cell.comm.median],
              ['bare', cell.bare.median],
            ] as const)
              if (m && (!fastest || m.perSecond > fastest.perSecond)) {
                fastest = { server: `${s.name} ${which}`, perSecond: m.perSecond };
                busy = m.loadgenBusy;
              }
      const reference = side.median?.perSecond ?? null;
      out.push({
        workload,
        transport,
        reference,
        fastest,
        loadgenBusy: busy,
        notBottleneck: reference === null || fastest === null ? null : reference > fastest.perSecond,
      });
    }
  return out;
}

function machine(subjects: Subject[]): Record<string, unknown> {
  const cpus = os.cpus();
  let distribution = '';
  try {
    distribution = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? '';
  } catch {
    // not Linux
  }
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    distribution,
    runtimes: Object.fromEntries(subjects.map((s) => [s.name, s.runtime])),
  };
}

/** The commit measured, and whether the packages measured differ from it. */
function source(): { commit: string | null; uncommittedPackages: boolean | null } {
  try {
    const git = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    return {
      commit: git(['rev-parse', 'HEAD']),
      uncommittedPackages: git(['status', '--porcelain', '--', 'packages', 'apps/talk']) !== '',
    };
  } catch {
    return { commit: null, uncommittedPackages: null };
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping every server and load generator\n`);
      killAll();
      process.exit(130);
    });
  nativeBinary('loadgen');
  nativeBinary('refserver');
  const { subjects, missing } = resolveSubjects(options.backends);
  for (const m of missing) progress(`not measured: ${m}`);
  const pinning = pinningFor();
  const report: Report = {
    date: new Date().toISOString(),
    source: source(),
    command: `pnpm bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    machine: machine(subjects),
    options: { ...options, out: undefined },
    loadgen: { compiler: compilerVersion(), pinning, reference: {}, proof: [] },
    subjects: [],
    missing,
    seconds: 0,
  };
  for (const subject of subjects)
    report.subjects.push({
      name: subject.name,
      backend: subject.backend,
      runtime: subject.runtime,
      transport: subject.transport,
      deviations: await deviationsOf(subject),
      cells: [],
    });
  // Workload by workload, every subject in turn. Idle comes first, while the machine has few
  // sockets: connect leaves thousands in TIME_WAIT for a minute.
  const order = [...options.workloads].sort((a, b) => (a === 'idle' ? -1 : b === 'idle' ? 1 : 0));
  const transports = [...new Set(subjects.map((s) => s.transport))];
  for (const workload of order) {
    if (workload !== 'idle' && workload !== 'scaling')
      report.loadgen.reference[workload] = await measureReference(workload, transports, options, pinning);
    for (const [i, subject] of subjects.entries()) {
      const result = report.subjects[i] as SubjectResult;
      result.cells.push(
        workload === 'idle'
          ? await idleCell(subject, options, pinning)
          : workload === 'scaling'
            ? await scalingCell(
                subject,
                {
                  rounds: options.rounds,
                  seconds: options.seconds,
                  warmup: options.warmup,
                  workload: options.scalingLoad,
                  connections: options.scalingConnections,
                },
                result.deviations,
                progress,
              )
            : await throughputCell(subject, workload, options, pinning, result.deviations),
      );
    }
  }
  for (const result of report.subjects)
    result.cells.sort(
      (a, b) => options.workloads.indexOf(a.workload) - options.workloads.indexOf(b.workload),
    );
  report.loadgen.proof = proofs(report);
  report.seconds = Math.round((Date.now() - started) / 100) / 10;

  const scaling = scalingRows(report);
  if (rows(report).length > 1) {
    console.log(table(rows(report)));
    console.log();
  }
  if (scaling.length > 1) {
    console.log(table(scaling));
    console.log();
  }
  for (const line of notes(report)) console.log(line);

  mkdirSync(options.out, { recursive: true });
  const stamp = report.date.replace(/:/g, '-').replace(/\..*/, '');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const chart = svg(report);
  for (const name of [`bench-${stamp}`, 'latest']) {
    writeFileSync(join(options.out, `${name}.json`), json);
    writeFileSync(join(options.out, `${name}.svg`), chart);
  }
  writeFileSync(
    join(options.out, 'latest.md'),
    `${table(summaryRows(report), true)}\n\n${[rows(report), scaling]
      .filter((r) => r.length > 1)
      .map((r) => `${table(r, true)}\n\n`)
      .join('')}${notes(report)
      .map((line) => `- ${line}`)
      .join('\n')}\n`,
  );
  progress(
    `done in ${report.seconds} s: ${join(options.out, `bench-${stamp}.json`)}, .svg (also latest.json, latest.svg, latest.md)`,
  );
  const faults = report.subjects.flatMap((s) =>
    s.cells
      .filter((c): c is ScalingCell => c.kind === 'scaling' && c.fault !== null)
      .map((c) => `${s.name}: ${c.fault}`),
  );
  if (faults.length) {
    for (const f of faults) process.stderr.write(`FAULT in the scaling row: ${f}\n`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  killAll();
  process.exit(1);
});

// pnpm bench:profile: where a talk server's time goes. Each backend's talk server runs under its
// runtime's own CPU profiler (--cpu-prof) while the load generator drives one workload; the
// profile's samples are then summed by where the code lives (the kernel calls of the runtime, the
// garbage collector, @comm's core, the backend, the talk app, the runtime's own JavaScript), and
// the hottest functions are listed. The .cpuprofile files stay in the results folder, for
// Chrome's DevTools or speedscope.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { killAll } from './children.js';
import { fail, parseFlags } from './flags.js';
import { load, type Pinning, startServer } from './measure.js';
import { workloadSpecs } from './model.js';
import { benchDir, nativeBinary } from './native.js';
import { resolveSubjects, type Subject, talkCommand } from './subjects.js';

const usage = `usage: pnpm bench:profile [-- options]   (or: node apps/bench/dist/profile.js [options])

Runs each backend's talk server under its runtime's CPU profiler while the C load generator
drives one workload, then prints where the time went and the hottest functions.

  --backends LIST   node,bun,deno,uws (default node@24,bun,deno)
  --workload NAME   rr, pipelined or 1k (default pipelined)
  --seconds S       seconds of load (default 5)
  --top N           functions listed per backend (default 12)
  --out DIR         where the .cpuprofile files go (default apps/bench/results/profiles)
  --help, -h        prints this text
A value may also be given as --NAME=VALUE.`;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives, for the summary. */
function place(frame: ProfileNode['callFrame']): string {
  const { functionName: name, url } = frame;
  if (name === '(idle)') return 'idle (waiting for I/O)';
  if (name === '(garbage collector)') return 'garbage collector';
  if (name === '(program)' || name === '(root)') return 'runtime (native, unattributed)';
  if (url.includes('/packages/core/')) return '@comm/core';
  if (/\/packages\/(node|bun|deno|uws)\//.test(url)) return 'the backend';
  if (url.includes('/apps/talk/')) return 'the talk app';
  if (url === '') return 'runtime (native: syscalls, encoding, promises)';
  return "runtime's JavaScript (node:net, streams, timers)";
}

function percent(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(1).padStart(5)}%`;
}

function summarize(file: string, top: number): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfTime = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    selfTime.set(id, (selfTime.get(id) ?? 0) + dt);
    total += dt;
  });
  const places = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, time] of selfTime) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    places.set(place(frame), (places.get(place(frame)) ?? 0) + time);
    const where = frame.url ? ` ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(key, (functions.get(key) ?? 0) + time);
  }
  const lines = ['  where the time went:'];
  for (const [name, time] of [...places].sort((a, b) => b[1] - a[1]))
    lines.push(`    ${percent(time, total)}  ${name}`);
  lines.push(`  hottest functions (self time):`);
  for (const [name, time] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`    ${percent(time, total)}  ${name}`);
  return lines;
}

/** The talk server's command with the runtime's profiler switched on. */
function profiledCommand(subject: Subject, dir: string): [string, string[]] {
  const [bin, args] = talkCommand(subject);
  const flags = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  // Deno takes its flags after `run`; Node and Bun before the script.
  if (subject.backend === 'deno') return [bin, [...args.slice(0, 2), ...flags, ...args.slice(2)]];
  return [bin, [...flags, ...args]];
}

async function main(argv: readonly string[]): Promise<void> {
  const options = parseFlags(argv, {
    usage,
    valued: ['backends', 'workload', 'seconds', 'top', 'out'],
  }).values;
  const workload = options.get('workload') ?? 'pipelined';
  if (workload !== 'rr' && workload !== 'pipelined' && workload !== '1k') {
    fail(usage, `--workload must be rr, pipelined or 1k, not "${workload}"`);
  }
  const seconds = Number(options.get('seconds') ?? 5);
  const top = Number(options.get('top') ?? 12);
  if (!(seconds > 0) || !(Number.isInteger(top) && top > 0)) {
    fail(usage, '--seconds must be a positive number and --top a positive integer');
  }
  const out = resolve(options.get('out') ?? join(benchDir, 'results', 'profiles'));
  const { subjects, missing } = resolveSubjects((options.get('backends') ?? 'node@24,bun,deno').split(','));
  for (const m of missing) console.error(`skipped: ${m}`);
  nativeBinary('loadgen');
  const pinning: Pinning = { server: 1, loadgen: 0 };
  const spec = workloadSpecs[workload];
  for (const subject of subjects) {
    const dir = join(out, `${subject.name}-${workload}-${Date.now()}`);
    mkdirSync(dir, { recursive: true });
    process.stderr.write(
      `profiling ${subject.name} (${subject.runtime}) under ${workload} for ${seconds} s...\n`,
    );
    const server = await startServer(subject.name, profiledCommand(subject, dir), pinning);
    let result: Awaited<ReturnType<typeof load>>;
    try {
      result = await load(
        server.port,
        subject.transport,
        { ...spec, connections: 50, seconds, warmup: 0.5 },
        pinning,
      );
    } finally {
      // SIGTERM: the talk server exits 0, and the runtime writes its profile on the way out.
      await server.child.stop(10_000);
    }
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    console.log(
      `${subject.name} (${subject.runtime}), ${workload}: ${Math.round(result.perSecond).toLocaleString('en-US')} replies/s`,
    );
    if (files.length === 0) console.log(`  no profile was written in ${dir}`);
    else {
      for (const line of summarize(join(dir, files[0] as string), top)) console.log(line);
      console.log(`  profile: ${join(dir, files[0] as string)}`);
    }
    console.log('');
  }
}

try {
  await main(process.argv.slice(2));
} finally {
  killAll();
}

import { execFileSync } from 'node:child_process';
import { killAll } from '@comm/bench/children';
import { scenarios, selectScenarios } from './scenarios.js';
import { allBackends, type BackendName } from './server.js';
import { runSuite } from './suite.js';
import { formatTable, thresholds } from './table.js';

const usage = `usage: pnpm hostile [OPTION]...   (or: node apps/hostile/dist/cli.js [OPTION]...)
Hostile traffic against each backend's talk server, each scenario on a fresh server process, from
Python 3 clients. Exits 1 if any scenario does not hold, 2 if the arguments are wrong or there is no python3.
  --backend NAME     node, bun, deno or uws, repeated or comma-separated (default: all four); also --backends
  --only SCENARIO    a scenario by number or name, repeated or comma-separated (default: all)
  --short            the scaled-down counts and timeouts
  --help, -h         prints this text
SCENARIO: ${scenarios.map((sc) => `${sc.id} ${sc.name}`).join(', ')}.`;

function parse(argv: readonly string[]) {
  const backends: BackendName[] = [];
  const only: string[] = [];
  let short = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--backend' || a === '--backends') {
      for (const b of value().split(',')) {
        if (!allBackends.includes(b as BackendName)) throw new Error(`unknown backend "${b}"`);
        backends.push(b as BackendName);
      }
    } else if (a === '--only') only.push(value());
    else if (a === '--short') short = true;
    else if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    } else throw new Error(`unknown argument "${a}"`);
  }
  return {
    backends: backends.length > 0 ? backends : [...allBackends],
    scenarios: selectScenarios(only),
    short,
  };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });

// The arguments first: --help and a wrong argument need no python3.
let options: ReturnType<typeof parse>;
try {
  options = parse(process.argv.slice(2));
} catch (error) {
  console.error(`hostile: ${(error as Error).message}\n${usage}`);
  process.exit(2);
}

try {
  execFileSync('python3', ['--version'], { stdio: 'ignore' });
} catch {
  console.error(
    'hostile: the clients are Python 3, and there is no python3 on PATH (on Debian: apt-get install python3)',
  );
  process.exit(2);
}
const started = Date.now();
const rows = await runSuite({
  ...options,
  onRow: (row) =>
    console.error(
      `hostile: ${row.backend} ${row.scenario.id} ${row.scenario.name}: ${row.status}${row.failures.length ? ` (${row.failures.join('; ')})` : ''}`,
    ),
});
console.log(
  `hostile traffic, ${options.short ? 'short' : 'full'} mode, ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
console.log(thresholds);
for (const backend of options.backends) {
  const mine = rows.filter((r) => r.backend === backend);
  console.log('');
  console.log(formatTable(mine, `${backend} (${backend === 'uws' ? 'comm-stream over WebSocket' : 'TCP'})`));
}
const failed = rows.filter((r) => r.status === 'FAIL');
console.log('');
console.log(
  `${rows.filter((r) => r.status === 'ok').length} held, ${failed.length} failed, ${rows.filter((r) => r.status === 'n/a').length} n/a`,
);
process.exit(failed.length > 0 ? 1 : 0);

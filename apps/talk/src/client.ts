import { parseArgs, serviceArg } from './args.js';
import { loadBackend } from './backends.js';
import { inRuntimeOf } from './runtime.js';
import { talkingToMyself } from './talk.js';

const usage = 'usage: talk-client [--backend node|bun|deno|uws] [--host localhost] [--service 10244]';
const { values } = parseArgs(
  process.argv.slice(2),
  { values: ['backend', 'host', 'service'], flags: [] },
  usage,
);
await inRuntimeOf(values.get('backend') ?? 'node', import.meta.url);
const api = await loadBackend(values.get('backend') ?? 'node');
const service = serviceArg(values.get('service') ?? '10244');
if (service === null) {
  console.error('talk client: --service must name a port');
  process.exit(2);
}
try {
  await talkingToMyself(api, values.get('host') ?? 'localhost', service);
} catch (error) {
  console.error(`talk client: ${(error as Error).message}`);
  process.exit(1);
}

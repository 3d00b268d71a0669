// Runs the benchmark suite directly: node --import tsx bench/main.ts [--json] [--quick] [--full] [--filter TEXT]
import { runBench } from './index.ts';

const args = process.argv.slice(2);
const at = args.indexOf('--filter');
await runBench({
  json: args.includes('--json'),
  quick: args.includes('--quick'),
  full: args.includes('--full'),
  ...(at >= 0 && args[at + 1] ? { filter: args[at + 1] } : {}),
});

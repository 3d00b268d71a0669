// The `seal` command.
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS, GpuUnavailableError, optionsFromEnv, type DeviceOptions } from '../gpu/device.ts';
import { doctor } from './doctor.ts';
import { pretrainCommand } from './pretrain.ts';

interface GlobalOpts {
  backend?: string;
  adapter?: string;
  power?: 'low-power' | 'high-performance';
}

function deviceOptions(cmd: Command): DeviceOptions {
  const o = cmd.optsWithGlobals<GlobalOpts>();
  const env = optionsFromEnv();
  return {
    ...env,
    ...(o.backend ? { backend: o.backend } : {}),
    ...(o.adapter ? { adapter: o.adapter } : {}),
    ...(o.power ? { powerPreference: o.power } : {}),
  };
}

const program = new Command('seal')
  .description('Self-adapting language models on WebGPU (Dawn): a model that edits its own weights.')
  .addOption(new Option('--backend <name>', `Dawn backend (env SEAL_BACKEND)`).choices(BACKENDS as string[]))
  .option('--adapter <name>', 'adapter name as Dawn lists it (env SEAL_ADAPTER)')
  .addOption(new Option('--power <pref>', 'power preference (env SEAL_POWER)').choices(['low-power', 'high-performance']))
  .showHelpAfterError();

program
  .command('doctor')
  .description('show the adapter, its limits and features, and run a self-test against the CPU')
  .option('--json', 'print one JSON object')
  .action(async (opts: { json?: boolean }, cmd: Command) => {
    const ok = await doctor(deviceOptions(cmd), Boolean(opts.json));
    process.exitCode = ok ? 0 : 1;
  });

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
};

program
  .command('pretrain')
  .description('train a base model from scratch on a SQuAD-format corpus (passages and their QA), with checkpoints and resume')
  .option('--data <file>', 'SQuAD v1.1 JSON to train on', 'data/knowledge/pretrain.json')
  .option('--out <file>', 'checkpoint (safetensors), written atomically', 'runs/pretrain/model.safetensors')
  .option('--layers <n>', 'transformer blocks', int, 2)
  .option('--heads <n>', 'attention heads', int, 4)
  .option('--width <n>', 'embedding width (divisible by heads)', int, 128)
  .option('--ctx <n>', 'context length', int, 128)
  .option('--batch <n>', 'sequences per step', int, 8)
  .option('--seq <n>', 'tokens per sequence', int, 128)
  .option('--steps <n>', 'optimisation steps', int, 1500)
  .option('--lr <x>', 'peak learning rate', num, 3e-3)
  .option('--seed <n>', 'seed for init and data order', int, 1)
  .option('--checkpoint-every <n>', 'steps between checkpoints', int, 100)
  .option('--resume', 'continue the unfinished run in --out')
  .action(async (opts, cmd: Command) => {
    await pretrainCommand(deviceOptions(cmd), { ...opts, resume: Boolean(opts.resume) });
  });

program
  .command('bench')
  .description('benchmark our kernels against peers (plain JS, gpu.js, TensorFlow.js-WebGPU, onnxruntime-node) on this adapter')
  .option('--json', 'one JSON object per case')
  .option('--quick', 'fewer and smaller cases')
  .option('--full', 'add the largest shapes (2048³)')
  .option('--filter <text>', 'only cases whose name contains this')
  .action(async (opts: { json?: boolean; quick?: boolean; full?: boolean; filter?: string }, cmd: Command) => {
    // The suite acquires its own device from the SEAL_* environment: pass the flags on through it.
    const d = deviceOptions(cmd);
    if (d.backend) process.env.SEAL_BACKEND = d.backend;
    if (d.adapter) process.env.SEAL_ADAPTER = d.adapter;
    if (d.powerPreference) process.env.SEAL_POWER = d.powerPreference;
    const { runBench } = await import('../../bench/index.ts');
    await runBench({ json: Boolean(opts.json), quick: Boolean(opts.quick), full: Boolean(opts.full), ...(opts.filter ? { filter: opts.filter } : {}) });
  });

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof GpuUnavailableError) {
    console.error(`seal: ${e.message}`);
    process.exitCode = 2;
  } else throw e;
}

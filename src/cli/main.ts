// The `seal` command.
import { Command, Option } from 'commander';
import { BACKENDS, GpuUnavailableError, optionsFromEnv, type DeviceOptions } from '../gpu/device.ts';
import { doctor } from './doctor.ts';

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

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof GpuUnavailableError) {
    console.error(`seal: ${e.message}`);
    process.exitCode = 2;
  } else throw e;
}

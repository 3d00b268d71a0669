// The `seal` command.
import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS, optionsFromEnv, type DawnOptions } from '../io/dawn.ts';
import { parseRange } from '../model/mask.ts';
import { DEFAULT_LORA } from '../model/lora.ts';
import { MODEL_SHAPES } from '../model/shapes.ts';
import { adaptCommand } from './adapt.ts';
import { kernelBenchCommand, type KernelBenchCliOptions } from './bench-kernel.ts';
import { demoCommand } from './demo.ts';
import { DEFAULT_KNOWLEDGE, writeKnowledgeDataset } from '../tasks/synthetic.ts';
import { doctor } from './doctor.ts';
import { pretrainCommand } from './pretrain.ts';
import { configFromFlags, trainCommand } from './train.ts';
import { TUNE_DEFAULTS } from './tune.ts';
import { bundled } from '../io/files.ts';
import { UserError } from '../util/errors.ts';

interface GlobalOpts {
  backend?: string;
  adapter?: string;
  power?: 'low-power' | 'high-performance';
  dtype?: 'f32' | 'f16';
}

function deviceOptions(cmd: Command): DawnOptions {
  const o = cmd.optsWithGlobals<GlobalOpts>();
  const env = optionsFromEnv();
  return {
    ...env,
    ...(o.backend ? { backend: o.backend } : {}),
    ...(o.adapter ? { adapter: o.adapter } : {}),
    ...(o.power ? { powerPreference: o.power } : {}),
    ...(o.dtype ? { dtype: o.dtype } : {}),
  };
}

const program = new Command('seal')
  .description('Self-adapting language models on WebGPU (Dawn): a model that edits its own weights.')
  .addOption(new Option('--backend <name>', `Dawn backend (env SEAL_BACKEND)`).choices(BACKENDS as string[]))
  .option('--adapter <name>', 'adapter name as Dawn lists it (env SEAL_ADAPTER)')
  .addOption(new Option('--power <pref>', 'power preference (env SEAL_POWER)').choices(['low-power', 'high-performance']))
  .addOption(new Option('--dtype <type>', 'how model weight matrices are stored on the GPU: f16 halves them (needs shader-f16; arithmetic stays f32) (env SEAL_DTYPE)').choices(['f32', 'f16']))
  .showHelpAfterError();

// The running command, to name it in a user error.
let running = 'seal';
program.hook('preAction', (_, action) => {
  running = `seal ${action.name()}`;
});

program
  .command('doctor')
  .description('show the adapter, its limits and features, and run a self-test against the CPU')
  .option('--json', 'print one JSON object')
  .action(async (opts: { json?: boolean }, cmd: Command) => {
    const ok = await doctor(deviceOptions(cmd), Boolean(opts.json));
    process.exitCode = ok ? 0 : 1;
  });

/**
 * A commander argument parser: `convert` the text (an error it throws is shown as is), then refuse
 * a value that fails `ok` with `message`.
 */
function argParser<T>(convert: (v: string) => T, ok: (x: T) => boolean = () => true, message = ''): (v: string) => T {
  return (v) => {
    let x: T;
    try {
      x = convert(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
    if (!ok(x)) throw new InvalidArgumentError(message);
    return x;
  };
}
const int = argParser(Number, (n) => Number.isInteger(n) && n >= 1, 'must be a positive integer');
const whole = argParser(Number, (n) => Number.isInteger(n) && n >= 0, 'must be a whole number');
const num = argParser(Number, (n) => Number.isFinite(n) && n > 0, 'must be a positive number');
const float = argParser(Number, Number.isFinite, 'must be a number');
const range = argParser(parseRange);

program
  .command('pretrain')
  .description('train a base model from scratch on a SQuAD-format corpus (passages and their QA), with checkpoints and resume')
  .option('--data <file>', 'SQuAD v1.1 JSON to train on', bundled('knowledge/pretrain.json'))
  .option('--out <file>', 'checkpoint (safetensors), written atomically', 'runs/pretrain/model.safetensors')
  .option('--passages <n>', 'only the first n passages of --data', int)
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
  .option('--init <file>', 'start from this checkpoint (same layers, heads, width); a longer --ctx extends its positions')
  .option('--self-edits <n>', 'also n documents per passage of the passage followed by a template self-edit (the text variant\'s base)', whole, 0)
  .option('--resume', 'continue the unfinished run in --out')
  .action(async (opts, cmd: Command) => {
    await pretrainCommand(deviceOptions(cmd), { ...opts, resume: Boolean(opts.resume) });
  });

program
  .command('finetune')
  .description('finetune a model on a text file or a SQuAD file: a LoRA adapter (default) or the full model; progress, checkpoints, --resume')
  .requiredOption('--data <file>', 'a SQuAD v1.1 .json (each passage with its QA) or a text file (paragraphs split at blank lines)')
  .option('--model <path>', 'model to finetune: a GPT-2 file or a Llama-family folder', 'data/base.safetensors')
  .option('--out <file>', 'the adapter (or with --full the model: a file for GPT-2, a Hugging Face folder for a Llama-family model), written atomically', 'runs/finetune/out.safetensors')
  .option('--full', 'train every weight instead of a LoRA adapter')
  .option('--targets <globs>', "comma-separated weight globs the LoRA adapts (default: every linear of the model's blocks)")
  .option('--rank <n>', 'LoRA rank', int, DEFAULT_LORA.rank)
  .option('--alpha <x>', 'LoRA alpha (the term is scaled by alpha/rank)', num, DEFAULT_LORA.alpha)
  .option('--steps <n>', 'optimisation steps', int, 200)
  .option('--lr <x>', 'peak learning rate (warm-up, then cosine)', num, 1e-3)
  .option('--batch <n>', 'sequences per step', int, 4)
  .option('--seq <n>', "tokens per sequence (default: the model's context)", int)
  .option('--seed <n>', 'seed for the adapter init and data order', int, 1)
  .option('--checkpoint-every <n>', 'steps between checkpoints', int, 50)
  .option('--resume', 'continue the unfinished run in --out')
  .action(async (opts, cmd: Command) => {
    const { finetuneCommand } = await import('./finetune.ts');
    await finetuneCommand(deviceOptions(cmd), opts);
  });

program
  .command('bench')
  .description('benchmark our kernels against peers (plain JS, gpu.js, TensorFlow.js-WebGPU, onnxruntime-node) on this adapter')
  .option('--json', 'one JSON object per case')
  .option('--quick', 'fewer and smaller cases')
  .option('--full', 'add the largest shapes (2048³)')
  .option('--filter <text>', 'only cases whose name contains this')
  .option('--model [shape]', `the model-level suite instead: tokens/s and peak GPU bytes of forward, training step and generation, f32 and f16, on a random model of a shape (${Object.keys(MODEL_SHAPES).join(', ')}; default gpt2-tiny)`)
  .option('--pool', 'GPU buffer creations per pretraining step and model call, buffer pool off and on')
  .option('--kernel <file.wgsl>', 'time your own compute kernel instead (with --entry, --dispatch, --buffers)')
  .option('--entry <name>', '--kernel: the entry point', 'main')
  .option('--dispatch <x,y,z>', '--kernel: workgroups along x, y, z (missing ones are 1)')
  .option('--buffers <sizes>', '--kernel: storage buffers bound at @group(0) @binding(0), (1), …: bytes (4096, 64k, 4m) or f32 shapes (1024x1024), comma-separated')
  .option('--constants <k=v,...>', "--kernel: values of the shader's override constants")
  .option('--flops <n>', '--kernel: floating-point operations per dispatch, for GFLOP/s', num)
  .option('--reps <n>', '--kernel: timed dispatches after a warm-up', int, 10)
  .addOption(new Option('--timing <how>', '--kernel: GPU timestamps where the adapter has them, or the wall clock').choices(['auto', 'gpu-timestamps', 'wall-clock']).default('auto'))
  .option('--name <label>', "--kernel: the row's name (default file:entry)")
  .action(async (opts: { json?: boolean; quick?: boolean; full?: boolean; filter?: string; model?: boolean | string; pool?: boolean } & Partial<KernelBenchCliOptions>, cmd: Command) => {
    if (opts.kernel) {
      if (!opts.dispatch || !opts.buffers) throw new UserError('--kernel needs --dispatch x,y,z and --buffers <sizes>');
      await kernelBenchCommand(deviceOptions(cmd), opts as KernelBenchCliOptions);
      return;
    }
    // The suite acquires its own device from the SEAL_* environment: pass the flags on through it.
    const d = deviceOptions(cmd);
    if (d.backend) process.env.SEAL_BACKEND = d.backend;
    if (d.adapter) process.env.SEAL_ADAPTER = d.adapter;
    if (d.powerPreference) process.env.SEAL_POWER = d.powerPreference;
    if (d.dtype) process.env.SEAL_DTYPE = d.dtype;
    if (opts.pool) {
      const { buffersBench } = await import('../../bench/buffers.ts');
      await buffersBench({ json: Boolean(opts.json) });
      return;
    }
    if (opts.model) {
      const { modelBench } = await import('../../bench/model.ts');
      await modelBench({ json: Boolean(opts.json), quick: Boolean(opts.quick), ...(typeof opts.model === 'string' ? { shape: opts.model } : {}) });
      return;
    }
    const { runBench } = await import('../../bench/index.ts');
    await runBench({ json: Boolean(opts.json), quick: Boolean(opts.quick), full: Boolean(opts.full), ...(opts.filter ? { filter: opts.filter } : {}) });
  });

program
  .command('train')
  .description('train the edit generator (SEAL variant A) with the meta-gradient, PPO or ReST-EM; writes a run directory')
  .option('--run <dir>', 'run directory: config.json, metrics.jsonl, checkpoint, policy', 'runs/seal')
  .option('--config <file>', 'JSON config (fields as in config.json); flags override it')
  .option('--resume', 'continue the run in --run from its last checkpoint')
  .option('--stop-after <n>', 'stop after n more iterations (checkpointed; continue later with --resume)', int)
  .option('--model <file>', 'frozen base model checkpoint')
  .option('--mask <globs>', "comma-separated tensor-name globs the edit may change (default: every MLP weight matrix of the model: h.*.mlp.c_fc.weight,h.*.mlp.c_proj.weight for GPT-2, model.layers.*.mlp.{gate,up,down}_proj.weight for Llama)")
  .option('--mask-rows <a:b>', 'only these rows of the masked tensors', range)
  .option('--mask-cols <a:b>', 'only these columns', range)
  .option('--directions <kinds>', 'candidate directions per masked tensor: grad, sign or grad,sign')
  .option('--lookahead <x>', 'also the directions from the gradient after a probe step of this size along the sign direction (0: none)', num)
  .option('--penalty <x>', 'λ of the edit-norm penalty in the reward', float)
  .addOption(new Option('--algo <name>', 'how the generator learns').choices(['meta', 'ppo', 'rest-em']))
  .option('--iterations <n>', 'iterations', int)
  .option('--batch <n>', 'passages per iteration (B)', int)
  .option('--group <n>', 'edits sampled per passage (G; ppo, rest-em)', int)
  .option('--epochs <n>', 'updates per iteration (ppo, rest-em)', int)
  .option('--lr <x>', "the generator's learning rate", float)
  .option('--learn-std', 'learn log σ as well (ppo)')
  .option('--latent <n>', 'policy hidden width', int)
  .option('--init-log-std <x>', 'initial log σ of the edit distribution', float)
  .option('--seed <n>', 'seed', int)
  .option('--workers <url>', 'score the edits on `seal worker`s through this queue (redis://host:port; docs/scale-out.md)')
  .option('--queue-timeout <s>', 'with --workers: stop when the queue has been unreachable this long', num, 120)
  .option('--worker-timeout <s>', 'with --workers: stop when no worker has been alive this long while jobs wait', num, 60)
  .action(async (opts, cmd: Command) => {
    const config = await configFromFlags(opts, opts.config);
    const workers = opts.workers
      ? { url: String(opts.workers), queueTimeoutMs: opts.queueTimeout * 1000, workerTimeoutMs: opts.workerTimeout * 1000, status: (l: string) => console.error(`seal train: ${l}`) }
      : undefined;
    await trainCommand(deviceOptions(cmd), opts.run, config, Boolean(opts.resume), opts.stopAfter ?? Infinity, workers);
  });

program
  .command('worker')
  .description('score SEAL edits for `seal train --workers` runs: takes jobs from the queue until stopped (docs/scale-out.md)')
  .requiredOption('--queue <url>', 'the queue (redis://host:port) the learner was given as --workers')
  .option('--model <file>', 'the base model; its file must be the run\'s, byte for byte', 'data/base.safetensors')
  .option('--lock-ms <ms>', "a job's lock; renewed every half of it while the job runs. A killed worker's job is retried after it", int, 30_000)
  .option('--name <name>', 'name in logs and results (default host:pid)')
  .action(async (opts, cmd: Command) => {
    const { workerCommand } = await import('./worker.ts');
    await workerCommand(deviceOptions(cmd), opts);
  });

program
  .command('eval')
  .description('knowledge incorporation on a split: answer NLL, exact match, time, edit norm and forgetting per method')
  .option('--model <file>', 'base model checkpoint', bundled('base.safetensors'))
  .option('--split <name>', 'held-out, rl-train or pretrain (or a SQuAD JSON file)', 'held-out')
  .option('--data-dir <dir>', 'where the splits and general.txt are', bundled('knowledge'))
  .option('--methods <list>', 'comma-separated: base, in-context, fixed-step, fixed-sign, finetune-mask, finetune-full, generator-init, seal (with --policy), random', 'base,in-context,finetune-mask,finetune-full,random')
  .option('--mask <globs>', "comma-separated tensor-name globs the edits and the masked finetune change (with --policy: the policy's mask; default: every MLP weight matrix of the model)")
  .option('--mask-rows <a:b>', 'only these rows of the masked tensors')
  .option('--mask-cols <a:b>', 'only these columns')
  .option('--finetune-steps <k>', 'AdamW steps of the finetune baselines', int, 10)
  .option('--finetune-lr <x>', 'learning rate of the finetune baselines', num, 1e-3)
  .option('--random-norm <x|method>', 'norm of the random edit: a number, or finetune-mask / finetune-full / seal to match that method per passage', 'finetune-mask')
  .option('--policy <file>', "a trained SEAL policy (a run's policy.safetensors): adds the 'seal' method")
  .option('--tuned <file>', 'step sizes and finetune settings chosen on validation by `seal tune`')
  .option('--step-size <x>', 'size of the fixed steps without --tuned', num)
  .option('--seeds <n>', 'seeds for methods with randomness', int, 3)
  .option('--passages <n>', 'only the first n passages', int)
  .option('--general <n>', 'general-text lines for forgetting', int, 64)
  .option('--max-new <n>', 'longest greedy answer, in tokens', int, 16)
  .option('--json', 'print the full result as JSON')
  .option('--report <dir>', 'write report.md and charts there')
  .option('--metrics <file>', 'metrics.jsonl of a training run, charted in the report')
  .action(async (opts, cmd: Command) => {
    const { runEval } = await import('./eval.ts');
    await runEval(deviceOptions(cmd), opts);
  });

program
  .command('tune')
  .description("choose the baselines' hyper-parameters on the validation split: fixed step sizes by a sweep, finetune lr × steps over a grid")
  .option('--model <file>', 'base model checkpoint', bundled('base.safetensors'))
  .option('--split <name>', 'the split to tune on (never held-out)', 'validation')
  .option('--data-dir <dir>', 'where the splits are', bundled('knowledge'))
  .option('--passages <n>', 'the first n passages', int, 16)
  .option('--mask <globs>', 'comma-separated tensor-name globs of the edits and the masked finetune (default: every MLP weight matrix of the model)')
  .option('--methods <list>', 'comma-separated: fixed-step, fixed-sign, finetune-mask, finetune-full', 'fixed-step,fixed-sign,finetune-mask,finetune-full')
  .option('--step-sizes <list>', 'fixed step sizes to sweep', TUNE_DEFAULTS.stepSizes)
  .option('--lrs <list>', 'finetune learning rates', TUNE_DEFAULTS.lrs)
  .option('--steps <list>', 'finetune step counts', TUNE_DEFAULTS.steps)
  .option('--out <file>', 'where to write the choices (JSON)', 'runs/tuned.json')
  .action(async (opts, cmd: Command) => {
    const { tuneCommand } = await import('./tune.ts');
    await tuneCommand(deviceOptions(cmd), opts);
  });

program
  .command('compare')
  .description('one table from several `seal eval --json` results on the same passages, each row paired per passage against one method')
  .argument('<inputs...>', 'eval JSON files (every method in them), or label[:method]=file1,file2,… (one file per training seed)')
  .option('--against <method>', 'the row every other row is paired against', 'fixed-step')
  .option('--json', 'print the rows as JSON')
  .action(async (inputs: string[], opts) => {
    const { compareCommand } = await import('./compare.ts');
    compareCommand({ inputs, ...opts });
  });

program
  .command('demo')
  .description('the main job: a short SEAL training on the bundled model and data, then the held-out comparison with the baselines and a report')
  .addOption(new Option('--variant <v>', 'a: the parametric edit generator; text: self-edits written by the model (seal selfedit, demo-sized)').choices(['a', 'text']).default('a'))
  .option('--run <dir>', 'where the run and its report go (replaced; default runs/demo or runs/demo-text)')
  .option('--iterations <n>', 'SEAL training iterations (variant a)', int, 30)
  .option('--passages <n>', 'held-out passages to evaluate (default 12; text: 6)', int)
  .option('--seeds <n>', 'seeds for the random edit (variant a; default 1) or the evaluation (text; default 2)', int)
  .option('--quick', 'variant a, small (a minute or two): checks that everything runs (its numbers are not evidence)')
  .action(async (opts, cmd: Command) => {
    if (opts.variant === 'text') {
      const { selfEditCommand, TEXT_DEMO } = await import('./selfedit.ts');
      await selfEditCommand(deviceOptions(cmd), { ...TEXT_DEMO, run: opts.run ?? 'runs/demo-text', passages: opts.passages ?? TEXT_DEMO.passages, seeds: opts.seeds ?? TEXT_DEMO.seeds });
      return;
    }
    await demoCommand(deviceOptions(cmd), { run: opts.run ?? 'runs/demo', iterations: opts.iterations, passages: opts.passages ?? 12, seeds: opts.seeds ?? 1, quick: Boolean(opts.quick) });
  });

program
  .command('selfedit')
  .description('SEAL with text self-edits (variant B): ReST-EM rounds on a generator LoRA, the held-out table over seeds, the continual experiment, a report')
  .option('--model <file>', 'base model that writes self-edits (the text variant\'s base)', 'data/base-text.safetensors')
  .option('--data-dir <dir>', 'where the splits are', 'data/knowledge')
  .option('--run <dir>', 'where generator adapters, results.json and the report go (replaced)', 'runs/selfedit')
  .option('--train-passages <n>', 'rl-train passages per round', int, 8)
  .option('--rounds <n>', 'outer-loop rounds', int, 2)
  .option('--samples <n>', 'self-edits sampled per passage', int, 4)
  .addOption(new Option('--algo <name>', 'how the generator learns from the rewards').choices(['rest-em', 'reinforce']).default('rest-em'))
  .addOption(new Option('--keep <rule>', 'rest-em: keep every self-edit that beats the base, or the best per passage').choices(['positive', 'best']).default('positive'))
  .option('--gen-lr <x>', "the generator adapter's learning rate", num, 3e-3)
  .option('--gen-steps <n>', 'generator updates per round (minibatches of 4)', int, 8)
  .option('--inner-steps <n>', 'LoRA finetuning steps per self-edit (k)', int, 10)
  .option('--inner-lr <x>', "the inner loop's learning rate (1e-3: best of 1e-3, 3e-3 on 3 validation passages)", num, 1e-3)
  .option('--inner-batch <n>', 'self-edits whose LoRAs train at once, stacked in one pass per step (default 1: on lavapipe batching measured slower; bench/inner-batch.ts)', int)
  .option('--rank <n>', 'LoRA rank (generator and inner loop; alpha = 2·rank)', int, 8)
  .option('--with-passage', 'the inner loop trains on the passage followed by the self-edit')
  .option('--passages <n>', 'held-out passages to evaluate', int, 8)
  .option('--seeds <n>', 'evaluation seeds (adapter init and sampling)', int, 2)
  .option('--continual <n>', 'passages in the continual experiment (0: skip)', whole, 4)
  .option('--max-new <n>', 'longest self-edit, in tokens', int, 160)
  .option('--temperature <x>', 'sampling temperature of self-edits (top-k 20)', num, 1)
  .action(async (opts, cmd: Command) => {
    const { selfEditCommand } = await import('./selfedit.ts');
    await selfEditCommand(deviceOptions(cmd), opts);
  });

program
  .command('adapt')
  .description('adapt to new passages with a trained generator (one pass, no RL) and answer with the edited model')
  .option('--policy <file>', "a trained generator (a run's policy.safetensors)", 'runs/demo/policy.safetensors')
  .option('--model <file>', 'base model (default: the one the policy was trained on)')
  .option('--passages <file>', 'SQuAD v1.1 JSON: adapt to each passage and answer its questions')
  .option('--text <passage>', 'a passage as plain text')
  .option('--question <q>', 'a question to answer after adapting to --text (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--prompt <text>', 'a prompt to continue with the base and the edited model')
  .option('--max-new <n>', 'longest answer, in tokens', int, 16)
  .option('--write-edit <file>', 'write the edit alone (θ′ − θ of the masked tensors) as safetensors')
  .option('--write-model <file>', 'write the edited model as a checkpoint')
  .option('--json', 'one JSON object per passage: answers and answer NLL before and after, edit norm, ms')
  .action(async (opts, cmd: Command) => {
    await adaptCommand(deviceOptions(cmd), opts);
  });

program
  .command('data')
  .description('generate the synthetic knowledge dataset (SQuAD v1.1 JSON splits and general text), deterministic from a seed')
  .option('--out <dir>', 'output folder', 'data/knowledge')
  .option('--seed <n>', 'seed', int, DEFAULT_KNOWLEDGE.seed)
  .option('--pretrain <n>', 'pretrain passages', int, DEFAULT_KNOWLEDGE.counts.pretrain)
  .option('--rl-train <n>', 'rl-train passages', int, DEFAULT_KNOWLEDGE.counts.rlTrain)
  .option('--held-out <n>', 'held-out passages', int, DEFAULT_KNOWLEDGE.counts.heldOut)
  .option('--general <n>', 'lines of general text', int, DEFAULT_KNOWLEDGE.counts.general)
  .option('--validation <n>', 'validation passages', int, DEFAULT_KNOWLEDGE.counts.validation)
  .action(async (o) => {
    await writeKnowledgeDataset(o.out, { seed: o.seed, counts: { pretrain: o.pretrain, rlTrain: o.rlTrain, heldOut: o.heldOut, general: o.general, validation: o.validation } });
    console.log(`wrote ${o.out}`);
  });

try {
  await program.parseAsync();
} catch (e) {
  // User errors are one line; anything else is a bug and keeps its stack.
  if (!(e instanceof UserError)) throw e;
  console.error(`${running}: ${e.message}`);
  process.exitCode = 2;
}

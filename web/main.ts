// The playground page: the same model, generator and kernels as the `seal` command, on the
// browser's WebGPU. Adapt tab: one generator pass edits the model for a passage, and the base and
// edited models answer its questions. Benchmarks tab: bench/portable.ts in this tab. Report tab:
// the evaluation report's charts, when `npm start` has written them.
import shaders from 'seal:shaders';
import { portableBench, type PortableRow } from '../bench/portable.ts';
import { Gpu } from '../src/gpu/gpu.ts';
import type { Tokenizer } from '../src/io/tokenizer.ts';
import type { LanguageModel } from '../src/model/lm.ts';
import { loadModel } from '../src/model/load.ts';
import { barChart } from '../src/report/svg.ts';
import { Adapter, tryPassage, type PassageTrial } from '../src/seal/adapt.ts';
import { Generator } from '../src/seal/generator.ts';
import { loadSquad, type Passage } from '../src/tasks/squad.ts';
import { provide } from './files.ts';

/** What the server lists (web/serve.ts). */
interface Index {
  /** The model the benchmarks time when no generator's model is loaded. */
  model: string;
  policies: string[];
  report: string[];
  heldOut: string;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const MAX_NEW = 16;

function setStatus(id: string, state: string, text: string): void {
  const el = $(id);
  el.dataset.state = state;
  el.textContent = text;
}

function readShader(file: string): string {
  const text = shaders[file];
  if (text === undefined) throw new Error(`shader '${file}' is not in the bundle`);
  return text;
}

async function createGpu(): Promise<Gpu> {
  if (!('gpu' in navigator)) throw new Error('this browser has no WebGPU (navigator.gpu); Chromium needs --enable-unsafe-webgpu on Linux');
  return Gpu.create({ gpu: navigator.gpu, shaders: readShader, backend: 'browser' });
}

function describeAdapter(gpu: Gpu): string {
  const s = gpu.summary;
  const name = [s.vendor, s.architecture, s.description || s.device].filter((x) => x && x !== 'unknown').join(' · ');
  const feats = ['subgroups', 'shader-f16', 'timestamp-query'].map((f) => `${f} ${gpu.features.has(f) ? 'yes' : 'no'}`).join(', ');
  return `adapter: ${name || 'unnamed'} (${feats})`;
}

// ---- adapt tab --------------------------------------------------------------------------------

interface Loaded {
  gpu: Gpu;
  model: LanguageModel;
  tok: Tokenizer;
  adapter: Adapter;
  policy: string;
}

async function loadPolicy(gpu: Gpu, policy: string, previous?: Loaded): Promise<Loaded> {
  const { metadata } = await Generator.read(policy);
  const modelPath = metadata.model ?? 'data/base.safetensors';
  const { model, tokenizer: tok } = await loadModel(gpu, modelPath);
  const adapter = await Adapter.load(gpu, model, tok, policy).catch((e: Error) => {
    model.release();
    throw e;
  });
  // Only now: a file that fails to load leaves the previous generator in use.
  previous?.adapter.release();
  previous?.model.release();
  const best = metadata.bestIteration ? `, kept iteration ${metadata.bestIteration}, validation reward ${Number(metadata.validationReward).toFixed(3)}` : '';
  $('policy-info').textContent = `${adapter.config.algo} generator on ${modelPath}${best}`;
  return { gpu, model, tok, adapter, policy };
}

function passageFromForm(heldOut: readonly Passage[]): Passage {
  const lines = $<HTMLTextAreaElement>('questions').value.split('\n').map((l) => l.trim()).filter(Boolean);
  const questions = lines.map((line, i) => {
    const [question, answer] = line.split('|').map((s) => s.trim());
    return { id: `q${i}`, question: question!, answers: answer ? [answer] : [] };
  });
  const context = $<HTMLTextAreaElement>('context').value.trim();
  const chosen = heldOut.find((p) => p.id === $<HTMLSelectElement>('passage').value);
  return { id: chosen?.id ?? 'pasted', title: chosen?.title ?? 'pasted passage', context, questions };
}

const fmt = (x: number | undefined, d = 3) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));

function showTrial(t: PassageTrial, s: Loaded): void {
  const em = (k: 'baseEm' | 'editedEm') => t.questions.filter((q) => q[k]).length;
  const scored = t.questions.filter((q) => q.answer !== undefined).length;
  $('summary').innerHTML = '';
  $('summary').append(
    `generator ${s.policy} · edit ‖Δ‖ ${fmt(t.editNorm)} · ${t.ms.toFixed(0)} ms · answer NLL ${fmt(t.nll.base)} → ${fmt(t.nll.edited)}` +
      (scored ? ` · exact match ${em('baseEm')}/${scored} → ${em('editedEm')}/${scored}` : ''),
  );
  const body = $('answers').querySelector('tbody')!;
  body.replaceChildren(
    ...t.questions.map((q) => {
      const tr = document.createElement('tr');
      for (const [text, cls] of [
        [q.question, ''],
        [q.answer ?? '', ''],
        [q.base, q.baseEm ? 'hit' : ''],
        [q.edited, q.editedEm ? 'hit' : ''],
        [fmt(q.baseNll), 'num'],
        [fmt(q.editedNll), 'num'],
      ] as const) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
  $('answers').hidden = false;
  $('result-json').textContent = JSON.stringify(t, null, 2);
}

/** Returns what is loaded now (a new choice of generator replaces it), if anything is. */
async function setUpAdapt(gpu: Gpu, index: Index): Promise<() => Loaded | undefined> {
  const params = new URLSearchParams(location.search);
  const policies = [...new Set([params.get('policy'), ...index.policies].filter((p): p is string => Boolean(p)))];
  const select = $<HTMLSelectElement>('policy');
  select.replaceChildren(...policies.map((p) => new Option(p, p)));
  const passages = await loadSquad(index.heldOut);
  const pick = $<HTMLSelectElement>('passage');
  pick.append(...passages.map((p) => new Option(`held-out: ${p.title}`, p.id)));
  pick.onchange = () => {
    const p = passages.find((x) => x.id === pick.value);
    if (!p) return;
    $<HTMLTextAreaElement>('context').value = p.context;
    $<HTMLTextAreaElement>('questions').value = p.questions.map((q) => `${q.question} | ${q.answers[0]}`).join('\n');
  };
  const wanted = params.get('passage');
  pick.value = wanted && passages.some((p) => p.id === wanted) ? wanted : (passages[0]?.id ?? '');
  pick.onchange(new Event('change'));
  const run = $<HTMLButtonElement>('run');
  let loaded: Loaded | undefined;
  const choose = async (policy: string) => {
    run.disabled = true;
    setStatus('status', 'loading', `loading ${policy}…`);
    try {
      loaded = await loadPolicy(gpu, policy, loaded);
      setStatus('status', 'ready', 'ready');
    } finally {
      run.disabled = loaded === undefined;
    }
  };
  select.onchange = () => choose(select.value);
  // A policy.safetensors from this computer: read through web/files.ts like a served one.
  const file = $<HTMLInputElement>('policy-file');
  file.onchange = () => {
    const f = file.files?.[0];
    if (!f) return;
    const name = `picked:${f.name}`;
    provide(name, f);
    select.append(new Option(name, name));
    select.value = name;
    return choose(name);
  };
  run.onclick = async () => {
    const p = passageFromForm(passages);
    if (!p.context) return setStatus('status', 'error', 'paste a passage first');
    const now = loaded!;
    run.disabled = true;
    setStatus('status', 'busy', 'adapting…');
    try {
      const { trial } = await tryPassage(now.adapter, now.tok, p, MAX_NEW);
      showTrial(trial, now);
      setStatus('status', 'done', 'done');
    } finally {
      run.disabled = false;
    }
  };
  if (policies.length > 0) await choose(policies[0]!);
  else setStatus('status', 'no-policy', 'no trained generator found: `npm start` (or `seal train`) writes runs/<run>/policy.safetensors; or pick a file');
  return () => loaded;
}

// ---- benchmarks and report tabs ---------------------------------------------------------------

function setUpBench(gpu: Gpu, model: () => Promise<LanguageModel>): void {
  const button = $<HTMLButtonElement>('bench-run');
  button.disabled = false;
  button.onclick = async () => {
    button.disabled = true;
    setStatus('bench-status', 'busy', 'running…');
    const m = await model();
    const body = $('bench-table').querySelector('tbody')!;
    body.replaceChildren();
    const rows = await portableBench(gpu, m, {
      onRow: (r) => {
        const tr = document.createElement('tr');
        tr.innerHTML = '<td></td><td class="num"></td><td></td><td></td>';
        [r.case, r.value.toFixed(1), r.unit, r.note].forEach((v, i) => (tr.children[i]!.textContent = v));
        body.append(tr);
      },
    });
    drawBench(rows);
    $('bench-json').textContent = JSON.stringify({ adapter: describeAdapter(gpu), rows });
    setStatus('bench-status', 'done', 'done');
    button.disabled = false;
  };
}

function drawBench(rows: PortableRow[]): void {
  const chart = (unit: PortableRow['unit'], title: string) =>
    barChart({ title, yLabel: unit, bars: rows.filter((r) => r.unit === unit).map((r) => ({ label: r.case.replace(/^(matmul|model) /, ''), value: r.value })), digits: 1 });
  $('bench-chart').innerHTML = chart('GFLOP/s', 'matmul in this tab') + chart('tokens/s', 'the model in this tab');
}

function setUpReport(index: Index): void {
  $('report-note').textContent = index.report.length
    ? `The evaluation report's charts (${index.report[0]!.replace(/[^/]*$/, '')}).`
    : 'No report yet: `npm start` writes its charts to runs/demo/report/.';
  $('report-charts').replaceChildren(
    ...index.report.map((src) => {
      const img = document.createElement('img');
      img.src = src;
      img.alt = src;
      return img;
    }),
  );
}

function setUpTabs(): void {
  const buttons = [...document.querySelectorAll<HTMLButtonElement>('nav button')];
  for (const b of buttons) {
    b.onclick = () => {
      for (const o of buttons) {
        o.setAttribute('aria-selected', String(o === b));
        $(`tab-${o.dataset.tab}`).hidden = o !== b;
      }
    };
  }
}

async function main(): Promise<void> {
  setUpTabs();
  const index = (await (await fetch('/index.json')).json()) as Index;
  setUpReport(index);
  const gpu = await createGpu();
  $('adapter').textContent = describeAdapter(gpu);
  const current = await setUpAdapt(gpu, index);
  let own: LanguageModel | undefined;
  setUpBench(gpu, async () => current()?.model ?? (own ??= (await loadModel(gpu, index.model)).model));
}

window.addEventListener('unhandledrejection', (e) => setStatus('status', 'error', String(e.reason?.message ?? e.reason)));
main().catch((e: Error) => {
  setStatus('status', 'error', e.message);
  console.error(e);
});

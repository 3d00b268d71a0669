// Charts and report.md: SVGs are well-formed XML with the expected series, points and labels; the
// report has the method table and links the charts; empty input is refused.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejects } from 'node:assert/strict';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeReport, type TrainingRow } from '../../src/report/report.ts';
import { barChart, escapeXml, lineChart, niceTicks, scatterChart, tickLabel } from '../../src/report/svg.ts';
import type { EvalResult, RunRecord } from '../../src/tasks/eval.ts';

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** A small strict XML parser: throws on unbalanced tags, unquoted or repeated attributes, stray `<` or `&`. */
function parseXml(src: string): XmlElement {
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const checkText = (s: string, where: string) => {
    if (/[<]/.test(s) || /&/.test(s.replace(entity, ''))) throw new Error(`bad character data ${where}: ${JSON.stringify(s.slice(0, 40))}`);
  };
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' };
  const stack = [root];
  const token = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<\/([\w:-]+)\s*>|<([\w:-]+)((?:\s+[\w:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const m of src.matchAll(token)) {
    const [, close, open, attrText, selfClose, text, stray] = m;
    const top = stack.at(-1)!;
    if (stray) throw new Error(`malformed tag at ${m.index}: ${JSON.stringify(src.slice(m.index, m.index + 40))}`);
    if (text !== undefined) {
      checkText(text, `in <${top.name}>`);
      if (top === root && text.trim()) throw new Error('text outside the root element');
      top.text += text;
    } else if (close) {
      if (top.name !== close) throw new Error(`</${close}> closes <${top.name}>`);
      stack.pop();
    } else if (open) {
      const attrs: Record<string, string> = {};
      for (const [, k, v] of attrText!.matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        if (k! in attrs) throw new Error(`attribute ${k} repeated on <${open}>`);
        checkText(v ?? '', `in attribute ${k}`);
        attrs[k!] = v ?? '';
      }
      const el: XmlElement = { name: open, attrs, children: [], text: '' };
      if (top === root && root.children.length) throw new Error('more than one root element');
      top.children.push(el);
      if (!selfClose) stack.push(el);
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack.at(-1)!.name}>`);
  if (root.children.length !== 1) throw new Error('no root element');
  return root.children[0]!;
}

const all = (e: XmlElement): XmlElement[] => [e, ...e.children.flatMap(all)];
const texts = (svg: XmlElement) => all(svg).filter((e) => e.name === 'text' || e.name === 'tspan').map((e) => unescape(e.text));
const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
const points = (svg: XmlElement, series: string) => all(svg).filter((e) => e.attrs['data-series'] === series).length;

test('the XML checker rejects what it should', () => {
  assert.ok(parseXml('<a x="1"><b/>t &amp; u</a>'));
  for (const bad of ['<a><b></a>', '<a x=1/>', '<a>&</a>', '<a/><b/>', '<a x="1" x="2"/>', '<a>1 < 2</a>', '<a>']) {
    assert.throws(() => parseXml(bad), undefined, bad);
  }
});

test('nice ticks cover the data with round steps; labels carry the step’s decimals', () => {
  assert.equal(niceTicks(0, 1).values, [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
  const t = niceTicks(-0.013, 0.047);
  assert.ok(t.lo <= -0.013 && t.hi >= 0.047 && t.values.length >= 4 && t.values.length <= 8);
  assert.equal(niceTicks(0, 0).values, [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1], 'all zeros: 0..1');
  assert.ok(niceTicks(3, 3).lo < 3 && niceTicks(3, 3).hi > 3);
  assert.is(tickLabel(0.6000000000000001, 0.2), '0.6');
  assert.is(tickLabel(7.5, 2.5), '7.5');
  assert.is(tickLabel(1500, 500), '1500');
  assert.is(tickLabel(-1e-18, 0.01), '0');
  assert.throws(() => niceTicks(0, NaN), /finite/);
  assert.is(escapeXml(`<a & 'b'>`), '&lt;a &amp; &apos;b&apos;&gt;');
});

test('line, bar and scatter charts: well-formed, with titles, series, points and labels', () => {
  const line = parseXml(
    lineChart({
      title: 'Reward <&> "test"',
      xLabel: 'iteration',
      yLabel: 'reward',
      series: [
        { name: 'reward', points: [0, 1, 2, 3].map((x) => ({ x, y: x * 0.1, lo: x * 0.1 - 0.05, hi: x * 0.1 + 0.05 })) },
        { name: 'held-out', points: [{ x: 0, y: 0 }, { x: 2, y: NaN }, { x: 3, y: 0.2 }], dashed: true },
      ],
    }),
  );
  assert.is(line.name, 'svg');
  assert.ok(texts(line).includes('Reward <&> "test"'));
  for (const s of ['reward', 'held-out', 'iteration']) assert.ok(texts(line).includes(s), s);
  assert.is(points(line, 'reward'), 4);
  assert.is(points(line, 'held-out'), 2, 'NaN points are skipped');
  assert.ok(all(line).some((e) => e.name === 'polygon' && e.attrs['fill-opacity'] === '0.15'), 'the ± band');

  const bars = parseXml(barChart({ title: 'NLL', yLabel: 'nats', bars: [{ label: 'base', value: 2.5, error: 0.1 }, { label: 'finetune-mask', value: 1.25 }, { label: 'none', value: NaN }] }));
  const rects = all(bars).filter((e) => e.attrs['data-label']);
  assert.equal(rects.map((e) => e.attrs['data-label']), ['base', 'finetune-mask']);
  assert.ok(Number(rects[0]!.attrs.height) > 1.9 * Number(rects[1]!.attrs.height), 'bar heights follow the values');
  for (const s of ['2.50', '1.25', 'n/a', 'base']) assert.ok(texts(bars).includes(s), s);

  const scatter = parseXml(scatterChart({ title: 'S', xLabel: 'norm', yLabel: 'forgetting', series: [{ name: 'a', points: [{ x: 1, y: 2 }] }, { name: 'b', points: [{ x: 2, y: -1 }, { x: 3, y: 1 }] }] }));
  assert.equal([points(scatter, 'a'), points(scatter, 'b')], [1, 2]);
  const empty = parseXml(scatterChart({ title: 'E', xLabel: 'x', yLabel: 'y', series: [] }));
  assert.ok(texts(empty).includes('no data'));
});

function fakeResult(): EvalResult {
  const names = ['base', 'in-context', 'finetune-mask', 'random'];
  const runs: RunRecord[] = names.flatMap((method, m) =>
    [0, 1, 2].flatMap((p) =>
      (method === 'random' ? [1, 2] : [1]).map((seed) => {
        const norm = m >= 2 ? 0.5 + p + seed : 0;
        return { method, passage: `${p}.0`, seed, nll: 3 - m * 0.5 + p * 0.1, questionNll: [], em: m / 4, predictions: [], ms: m * 10, editNorm: norm, forgetting: norm * 0.01 };
      }),
    ),
  );
  return {
    split: 'held-out',
    passages: 3,
    questions: 12,
    seeds: [1, 2],
    generalLines: 8,
    baseGeneralNll: 1.5,
    methods: names.map((name, m) => ({
      name,
      seeds: name === 'random' ? [1, 2] : [1],
      nll: { mean: 3 - m * 0.5, std: name === 'random' ? 0.02 : 0 },
      nllSe: 0.05,
      em: { mean: m / 4, std: 0 },
      msPerPassage: m * 10,
      editNorm: { mean: m >= 2 ? 2 : 0, std: 0 },
      forgetting: { mean: m >= 2 ? 0.02 : 0, std: 0 },
    })),
    runs,
  };
}

test('writeReport: report.md with the method table and every chart, charts well-formed with their series', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seal-report-'));
  try {
    const metrics: TrainingRow[] = Array.from({ length: 25 }, (_, i) => ({
      iteration: i,
      rewardMean: i * 0.01,
      rewardStd: 0.02,
      improvement: i * 0.012,
      ...(i % 5 === 0 ? { validationImprovement: i * 0.008 } : {}),
      skipped: i === 3 ? 'NaN reward' : undefined,
      ms: { total: 5 },
    }));
    const out = await writeReport(dir, { evalResult: fakeResult(), metrics, title: 'Test run' });
    for (const f of out.files) assert.ok(existsSync(f), f);
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.match(md, /^# Test run/);
    for (const name of ['base', 'in-context', 'finetune-mask', 'random']) assert.match(md, new RegExp(`^\\| ${name} \\|`, 'm'));
    assert.match(md, /\| random \| 1\.500 ± 0\.020 \|/);
    for (const c of ['training-reward.svg', 'methods-nll.svg', 'methods-em.svg', 'forgetting-vs-norm.svg']) assert.match(md, new RegExp(`\\]\\(${c.replace('.', '\\.')}\\)`));
    assert.match(md, /\| iteration \| rewardMean \| rewardStd \| improvement \| validationImprovement \|/);
    assert.ok(out.pngNote ? md.includes(out.pngNote) : out.files.some((f) => f.endsWith('.png')), 'PNGs, or a note saying why not');

    const svg = (f: string) => parseXml(readFileSync(join(dir, f), 'utf8'));
    const reward = svg('training-reward.svg');
    assert.is(points(reward, 'reward (mean ± std)'), 25);
    assert.is(points(reward, 'NLL drop, scored (validation)'), 5);
    const nll = svg('methods-nll.svg');
    assert.equal(all(nll).filter((e) => e.attrs['data-label']).map((e) => e.attrs['data-label']), ['base', 'in-context', 'finetune-mask', 'random']);
    const scatter = svg('forgetting-vs-norm.svg');
    assert.equal([points(scatter, 'base'), points(scatter, 'finetune-mask'), points(scatter, 'random')], [0, 3, 6], 'only edits, one point per passage and seed');
    svg('methods-em.svg');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeReport refuses an empty report', async () => {
  await rejects(() => writeReport(join(tmpdir(), 'never'), {}), /nothing to report/);
  await rejects(() => writeReport(join(tmpdir(), 'never'), { metrics: [] }), /nothing to report/);
});

test.run();

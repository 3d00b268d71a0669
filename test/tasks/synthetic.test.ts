import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSquad } from '../../src/tasks/squad.ts';
import { DEFAULT_KNOWLEDGE, DEFAULT_VALIDATION, generateKnowledge, questionRole, SPLITS, writeKnowledgeDataset, type KnowledgeOptions } from '../../src/tasks/synthetic.ts';

const dir = mkdtempSync(join(tmpdir(), 'synthetic-test-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const BUNDLED = join(import.meta.dirname, '../../data/knowledge');
const SMALL: KnowledgeOptions = { seed: 11, counts: { pretrain: 30, rlTrain: 9, heldOut: 6, general: 10, validation: 5 } };
const data = generateKnowledge(DEFAULT_KNOWLEDGE);

function filesOf(d: string): Map<string, Buffer> {
  return new Map(readdirSync(d).sort().map((f) => [f, readFileSync(join(d, f))]));
}

test('the same seed gives the same bytes; another seed gives other data', async () => {
  const [a, b, c] = ['a', 'b', 'c'].map((x) => join(dir, x));
  await writeKnowledgeDataset(a!, SMALL);
  await writeKnowledgeDataset(b!, SMALL);
  await writeKnowledgeDataset(c!, { ...SMALL, seed: 12 });
  const [fa, fb, fc] = [a!, b!, c!].map(filesOf);
  assert.equal([...fa!.keys()], ['README.md', 'general.txt', 'held-out.json', 'pretrain.json', 'rl-train.json', 'validation.json']);
  for (const [name, bytes] of fa!) {
    assert.ok(bytes.equals(fb!.get(name)!), `${name} differs between two runs with one seed`);
    if (name !== 'README.md') assert.not.ok(bytes.equals(fc!.get(name)!), `${name} is the same for seeds 11 and 12`);
  }
});

test('the bundled data/knowledge is exactly what DEFAULT_KNOWLEDGE regenerates, under 1 MB', async () => {
  const fresh = join(dir, 'regenerated');
  await writeKnowledgeDataset(fresh, DEFAULT_KNOWLEDGE);
  const bundled = filesOf(BUNDLED);
  const regenerated = filesOf(fresh);
  assert.equal([...bundled.keys()], [...regenerated.keys()]);
  for (const [name, bytes] of regenerated) assert.ok(bytes.equals(bundled.get(name)!), `data/knowledge/${name} is stale: regenerate it`);
  const total = [...bundled.keys()].reduce((s, f) => s + statSync(join(BUNDLED, f)).size, 0);
  assert.ok(total < 1_000_000, `${total} bytes`);
  const readme = bundled.get('README.md')!.toString();
  assert.match(readme, `seed: ${DEFAULT_KNOWLEDGE.seed}`);
  assert.match(readme, `pretrain: ${DEFAULT_KNOWLEDGE.counts.pretrain}, rlTrain: ${DEFAULT_KNOWLEDGE.counts.rlTrain}`);
  assert.match(readme, `validation: ${DEFAULT_KNOWLEDGE.counts.validation}`);
});

test('validation is drawn last: without it (or with another size) every other file keeps its bytes', () => {
  const json = (d: ReturnType<typeof generateKnowledge>) => [...SPLITS.filter((s) => s !== 'validation').map((s) => JSON.stringify(d.splits[s].squad)), d.general.join('\n')];
  const counts = DEFAULT_KNOWLEDGE.counts;
  const none = generateKnowledge({ ...DEFAULT_KNOWLEDGE, counts: { ...counts, validation: 0 } });
  assert.is(none.splits.validation.squad.data.length, 0);
  assert.equal(json(none), json(data));
  // Omitting the count (as callers written before the split do) gives the bundled default.
  const { validation: _, ...older } = counts;
  assert.is(generateKnowledge({ ...DEFAULT_KNOWLEDGE, counts: older }).splits.validation.squad.data.length, DEFAULT_VALIDATION);
});

test('splits have the requested sizes and share no invented name, in names or in text', () => {
  const { counts } = DEFAULT_KNOWLEDGE;
  assert.equal(SPLITS.map((s) => data.splits[s].squad.data.length), [counts.pretrain, counts.rlTrain, counts.heldOut, counts.validation]);
  const wordsOf = (s: (typeof SPLITS)[number]) =>
    new Set(data.splits[s].squad.data.flatMap((a) => [a.title, a.paragraphs[0]!.context, ...a.paragraphs[0]!.qas.map((q) => q.question)]).join(' ').match(/[A-Za-z]+/g));
  for (const s of SPLITS) {
    const names = data.splits[s].names;
    assert.ok(names.length >= data.splits[s].squad.data.length, `${s}: at least one invented name per passage`);
    const words = wordsOf(s);
    for (const n of names) assert.ok(words.has(n), `${s}: ${n} is used`);
    for (const other of SPLITS.filter((o) => o !== s)) {
      const otherWords = wordsOf(other);
      const shared = names.filter((n) => otherWords.has(n) || data.splits[other].names.includes(n));
      assert.equal(shared, [], `${s} and ${other} share names`);
    }
  }
  const titles = SPLITS.flatMap((s) => data.splits[s].squad.data.map((a) => a.title));
  assert.is(new Set(titles).size, titles.length, 'titles are unique');
});

test('passages: 3-5 facts, short, each with a scored (-a) and a measured (-b) question whose answer is a span', () => {
  for (const s of SPLITS) {
    const passages = parseSquad(data.splits[s].squad, s); // validates that every answer is a span at answer_start
    for (const [a, article] of data.splits[s].squad.data.entries()) {
      const { context, qas } = article.paragraphs[0]!;
      const where = `${s} passage ${a}`;
      assert.ok(context.length >= 100 && context.length <= 350, `${where}: ${context.length} characters`);
      assert.ok(qas.length >= 6 && qas.length <= 10 && qas.length % 2 === 0, `${where}: ${qas.length} questions`);
      for (let q = 0; q < qas.length; q += 2) {
        const [qa, qb] = [qas[q]!, qas[q + 1]!];
        assert.is(questionRole(qa.id), 'scored');
        assert.is(questionRole(qb.id), 'measured');
        assert.is(qa.id.slice(0, -2), qb.id.slice(0, -2), `${where}: twins`);
        assert.ok(qa.id.startsWith(`${s}-`), qa.id);
        assert.equal(qa.answers, qb.answers, `${where}: twins share the answer`);
        assert.is.not(qa.question, qb.question, `${where}: twins are worded differently`);
        for (const question of [qa.question, qb.question]) assert.ok(question.includes(article.title) && question.endsWith('?'), question);
        const { text, answer_start: at } = qa.answers[0]!;
        assert.ok(text.split(' ').length <= 2, `${where}: short answer '${text}'`);
        // A whole-word span: not a piece of a longer word.
        assert.ok(!/\w/.test(context[at - 1] ?? ' ') && !/\w/.test(context[at + text.length] ?? ' '), `${where}: '${text}' at ${at} is part of a word`);
      }
      assert.is(passages[a]!.questions.length, qas.length);
    }
  }
});

test('general text is plain sentences about no entity', () => {
  assert.is(data.general.length, DEFAULT_KNOWLEDGE.counts.general);
  const names = new Set(SPLITS.flatMap((s) => data.splits[s].names));
  for (const line of data.general) {
    assert.match(line, /^[A-Z][a-z ,]*\.( [A-Z][a-z ,]*\.)+$/);
    for (const w of line.match(/[A-Za-z]+/g)!) assert.not.ok(names.has(w), `general text mentions ${w}`);
  }
  assert.ok(new Set(data.general).size > data.general.length * 0.9, 'lines are varied');
});

test('questionRole rejects ids without a role suffix', () => {
  assert.is(questionRole('x-1-flag-a'), 'scored');
  assert.is(questionRole('x-1-flag-b'), 'measured');
  assert.throws(() => questionRole('x-1-flag'), /ends in neither -a \(scored\) nor -b \(measured\)/);
});

test.run();

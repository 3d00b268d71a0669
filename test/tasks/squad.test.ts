import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSquad, parseSquad, passageName, toSquadFile, writeSquad, type SquadFile } from '../../src/tasks/squad.ts';

const dir = mkdtempSync(join(tmpdir(), 'squad-test-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const CONTEXT = 'Velmora lies on the river Ossel. Its flag is green.';
const valid = (): SquadFile => ({
  version: '1.1',
  data: [
    {
      title: 'Velmora',
      paragraphs: [
        {
          context: CONTEXT,
          qas: [
            { id: 'q1', question: 'Which river?', answers: [{ text: 'Ossel', answer_start: 26 }, { text: 'the river Ossel', answer_start: 16 }] },
            { id: 'q2', question: 'Flag colour?', answers: [{ text: 'green', answer_start: 45 }] },
          ],
        },
        { context: 'No questions here.', qas: [] },
      ],
    },
    { title: 'Other', paragraphs: [{ context: 'A B C', qas: [{ id: 'q3', question: 'Middle?', answers: [{ text: 'B', answer_start: 2 }] }] }] },
  ],
});

function invalid(json: unknown, pattern: RegExp): void {
  assert.throws(() => parseSquad(json, 'test.json'), (e: Error) => {
    assert.match(e.message, /^test\.json: not valid SQuAD v1\.1:\n/);
    assert.match(e.message, pattern);
    return true;
  });
}

test('parses SQuAD v1.1 into flat passages', () => {
  assert.equal(parseSquad(valid()), [
    {
      id: '0.0',
      title: 'Velmora',
      context: CONTEXT,
      questions: [
        { id: 'q1', question: 'Which river?', answers: ['Ossel', 'the river Ossel'] },
        { id: 'q2', question: 'Flag colour?', answers: ['green'] },
      ],
    },
    { id: '0.1', title: 'Velmora', context: 'No questions here.', questions: [] },
    { id: '1.0', title: 'Other', context: 'A B C', questions: [{ id: 'q3', question: 'Middle?', answers: ['B'] }] },
  ]);
});

test('write then parse round-trips, through the file and through toSquadFile', async () => {
  const path = join(dir, 'round.json');
  await writeSquad(path, valid());
  assert.equal(JSON.parse(readFileSync(path, 'utf8')), valid());
  const passages = parseSquad(JSON.parse(readFileSync(path, 'utf8')));
  assert.equal(toSquadFile(passages), valid());
  await writeSquad(path, toSquadFile(passages));
  assert.equal(parseSquad(JSON.parse(readFileSync(path, 'utf8'))), passages);
});

test('loading skips a paragraph with no questions, with one warning naming it by title and paragraph', async () => {
  const path = join(dir, 'bare.json');
  await writeSquad(path, valid());
  const warned: string[] = [];
  const warn = console.warn;
  console.warn = (m: string) => warned.push(m);
  try {
    assert.equal((await loadSquad(path)).map((p) => p.id), ['0.0', '1.0']);
  } finally {
    console.warn = warn;
  }
  assert.equal(warned, [`${path}: skipping 1 paragraph with no questions: 'Velmora' paragraph 1`]);
  assert.is(passageName({ id: '0.1', title: 'Velmora' }), "'Velmora' paragraph 1");
  assert.is(passageName({ id: 'mine', title: 'X' }), "'X' (mine)");
});

test('missing and mistyped fields are errors that say where', () => {
  const cases: [(f: SquadFile) => void, RegExp][] = [
    [(f) => delete (f.data[0]!.paragraphs[1] as { context?: string }).context, /^  data\[0\]\.paragraphs\[1\]\.context: missing \(expected string\)$/m],
    [(f) => delete (f.data[1]!.paragraphs[0]!.qas[0] as { answers?: unknown }).answers, /data\[1\]\.paragraphs\[0\]\.qas\[0\]\.answers: missing \(expected array\)/],
    [(f) => ((f.data[0]!.paragraphs[0]!.qas[1]!.answers[0] as { answer_start: unknown }).answer_start = '45'), /data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]\.answer_start: expected number, received string/],
    [(f) => (f.data[0]!.paragraphs[0]!.qas[0]!.answers[1]!.answer_start = 1.5), /qas\[0\]\.answers\[1\]\.answer_start: .*int/i],
    [(f) => (f.data[0]!.paragraphs[0]!.qas[1]!.answers = []), /data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers: .*>=1/],
    [(f) => delete (f.data[1] as { title?: string }).title, /data\[1\]\.title: missing/],
    [(f) => delete (f as { data?: unknown }).data, /^  data: missing \(expected array\)$/m],
  ];
  for (const [mutate, pattern] of cases) {
    const f = valid();
    mutate(f);
    invalid(f, pattern);
  }
  invalid([1], /\(root\): expected object, received array/);
});

test('answers must be spans of the context at answer_start', () => {
  const moved = valid();
  moved.data[0]!.paragraphs[0]!.qas[1]!.answers[0]!.answer_start = 40;
  invalid(moved, /data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]: text "green" is not at answer_start 40 \(the context there reads "g is "; the text occurs at 45\)/);
  const absent = valid();
  absent.data[1]!.paragraphs[0]!.qas[0]!.answers[0]!.text = 'D';
  invalid(absent, /data\[1\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: text "D" is not at answer_start 2 \(the context there reads "B"; the text does not occur in the context\)/);
  const pastEnd = valid();
  pastEnd.data[1]!.paragraphs[0]!.qas[0]!.answers[0]!.answer_start = 5;
  invalid(pastEnd, /text "B" is not at answer_start 5 \(the context there reads ""; the text occurs at 2\)/);
});

test('question ids must be unique; many problems are listed up to a limit', () => {
  const dup = valid();
  dup.data[1]!.paragraphs[0]!.qas[0]!.id = 'q1';
  invalid(dup, /data\[1\]\.paragraphs\[0\]\.qas\[0\]: id 'q1' repeats data\[0\]\.paragraphs\[0\]\.qas\[0\]/);
  const many = valid();
  const qas = many.data[1]!.paragraphs[0]!.qas;
  for (let i = 0; i < 14; i++) qas.push({ id: `x${i}`, question: '?', answers: [{ text: 'Z', answer_start: 0 }] });
  assert.throws(() => parseSquad(many), (e: Error) => {
    assert.is(e.message.split('\n').length, 1 + 10 + 1);
    assert.match(e.message, /qas\[1\]\.answers\[0\]: text "Z"/);
    assert.match(e.message, /\n  and 4 more$/);
    return true;
  });
});

test('a file that is not JSON is named', async () => {
  const path = join(dir, 'broken.json');
  writeFileSync(path, '{"data": [');
  await rejects(loadSquad(path), new RegExp(`SquadError: ${path.replace(/[.]/g, '\\.')}: .*JSON`));
  await rejects(loadSquad(join(dir, 'absent.json')), /absent\.json: ENOENT/);
});

test('writing refuses data that would not load', async () => {
  const bad = valid();
  bad.data[0]!.paragraphs[0]!.qas[0]!.answers[0]!.answer_start = 0;
  const path = join(dir, 'never.json');
  await rejects(writeSquad(path, bad), /never\.json \(being written\): not valid SQuAD v1\.1:\n.*text "Ossel" is not at answer_start 0/);
  assert.throws(() => readFileSync(path), /ENOENT/);
});

test.run();

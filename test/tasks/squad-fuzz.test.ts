// Fuzzing the SQuAD reader: seeded mutations of a valid file, as bytes (truncations, flipped bits,
// inserted and deleted bytes) and as JSON (a field replaced by a wrong type, a huge or negative
// number, a prototype name; removed; duplicated). Every case must load or fail with a SquadError
// (a user error), quickly. The reader holds the file and its parse, nothing sized by a value in it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSquad, type Passage, type SquadFile } from '../../src/tasks/squad.ts';
import { Rng } from '../../src/util/random.ts';
import { fuzz, mutateBytes, mutateJson, type Mutant } from '../fuzz.ts';

const dir = mkdtempSync(join(tmpdir(), 'squad-fuzz-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const CASES = 1200;

/** Two articles of the bundled held-out split, and a paragraph with no questions. */
function validFile(): SquadFile {
  const split = JSON.parse(readFileSync(fileURLToPath(new URL('../../data/knowledge/held-out.json', import.meta.url)), 'utf8')) as SquadFile;
  const [a, b] = split.data;
  return { version: '1.1', data: [a!, { ...b!, paragraphs: [...b!.paragraphs, { context: 'Nothing is asked here.', qas: [] }] }] };
}

function mutate(rng: Rng, file: SquadFile, text: Uint8Array): Mutant {
  if (rng.next() < 0.4) return mutateBytes(rng, text);
  // One to three structural edits, so some land together.
  let value: unknown = file;
  const whats: string[] = [];
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const m = mutateJson(rng, value);
    value = m.value;
    whats.push(m.what);
  }
  return { what: whats.join('; '), bytes: Buffer.from(JSON.stringify(value)) };
}

test(`${CASES} seeded mutations of a valid file: each loads or is a named error, fast`, async () => {
  const file = validFile();
  const text = Buffer.from(JSON.stringify(file));
  const rng = new Rng(7);
  const path = join(dir, 'mutant.json');
  const warn = console.warn;
  console.warn = () => {}; // the skipped empty paragraph, on every load
  try {
    const cases = Array.from({ length: CASES }, (_, i) => {
      const m = mutate(rng, file, text);
      return {
        what: `case ${i}: ${m.what}`,
        run: async () => {
          writeFileSync(path, m.bytes);
          checkPassages(await loadSquad(path), `case ${i}: ${m.what}`);
        },
      };
    });
    const tally = await fuzz(cases, 2000);
    assert.ok(tally.loaded > CASES / 20 && tally.refused > CASES / 2, JSON.stringify(tally));
  } finally {
    console.warn = warn;
  }
});

/** What a load promises: every passage has questions, each with a non-empty answer in its context. */
function checkPassages(passages: Passage[], what: string): void {
  for (const p of passages) {
    assert.ok(p.questions.length > 0, `${what}: passage ${p.id} has no questions`);
    for (const q of p.questions) assert.ok(q.answers.every((a) => a.length > 0 && p.context.includes(a)), `${what}: ${q.id}`);
  }
}

test.run();

// SQuAD v1.1 files (data → paragraphs → context, qas → question, answers), so the real SQuAD loads
// unchanged and our generated data uses the same format. Loading validates the structure and that
// every answer is a span of its context at answer_start; errors say where, e.g.
// `data[3].paragraphs[0].qas[2].answers[0]`. A paragraph with no questions is valid SQuAD, but there
// is nothing to score on it: loading skips it with a warning.
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic.ts';
import { readText } from '../io/files.ts';
import { UserError } from '../util/errors.ts';

const answerSchema = z.object({ text: z.string().min(1), answer_start: z.number().int().nonnegative() });
const qaSchema = z.object({ id: z.string().min(1), question: z.string().min(1), answers: z.array(answerSchema).min(1) });
const paragraphSchema = z.object({ context: z.string().min(1), qas: z.array(qaSchema) });
const squadSchema = z.object({
  version: z.string().optional(),
  data: z.array(z.object({ title: z.string(), paragraphs: z.array(paragraphSchema) })),
});

export type SquadFile = z.infer<typeof squadSchema>;

/** One context with its questions; any of `answers` counts as correct. */
export interface Passage {
  /** `${article}.${paragraph}` indices: SQuAD paragraphs have no id of their own. */
  id: string;
  title: string;
  context: string;
  questions: { id: string; question: string; answers: string[] }[];
}

export class SquadError extends UserError {
  override name = 'SquadError';
}

/** How many problems one error lists before "and N more". */
const MAX_LISTED = 10;

/** Validates parsed SQuAD JSON and flattens it to passages; `source` names the file in errors. */
export function parseSquad(json: unknown, source = 'SQuAD data'): Passage[] {
  const parsed = squadSchema.safeParse(json);
  if (!parsed.success) {
    throw problems(source, parsed.error.issues.map((i) => `${formatPath(i.path)}: ${describeIssue(i.message)}`));
  }
  const errors: string[] = [];
  const seenIds = new Map<string, string>();
  const passages = parsed.data.data.flatMap((article, a) =>
    article.paragraphs.map((p, j): Passage => ({
      id: `${a}.${j}`,
      title: article.title,
      context: p.context,
      questions: p.qas.map((qa, q) => {
        const where = `data[${a}].paragraphs[${j}].qas[${q}]`;
        const first = seenIds.get(qa.id);
        if (first) errors.push(`${where}: id '${qa.id}' repeats ${first}`);
        seenIds.set(qa.id, where);
        qa.answers.forEach((ans, k) => {
          const at = p.context.slice(ans.answer_start, ans.answer_start + ans.text.length);
          if (at === ans.text) return;
          const found = p.context.indexOf(ans.text);
          errors.push(
            `${where}.answers[${k}]: text ${JSON.stringify(ans.text)} is not at answer_start ${ans.answer_start} ` +
              `(the context there reads ${JSON.stringify(at)}; ${found >= 0 ? `the text occurs at ${found}` : 'the text does not occur in the context'})`,
          );
        });
        return { id: qa.id, question: qa.question, answers: qa.answers.map((ans) => ans.text) };
      }),
    })),
  );
  if (errors.length > 0) throw problems(source, errors);
  return passages;
}

/** How messages name a passage: by title and paragraph index, e.g. `'Normans' paragraph 2`. */
export function passageName(p: Pick<Passage, 'id' | 'title'>): string {
  const paragraph = /^\d+\.(\d+)$/.exec(p.id)?.[1];
  return `'${p.title}' ${paragraph === undefined ? `(${p.id})` : `paragraph ${paragraph}`}`;
}

/** The passages of a SQuAD file that have questions; the others are skipped with one warning. */
export async function loadSquad(path: string): Promise<Passage[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readText(path));
  } catch (e) {
    throw new SquadError(`${path}: ${(e as Error).message}`);
  }
  const passages = parseSquad(json, path);
  const bare = passages.filter((p) => p.questions.length === 0);
  if (bare.length > 0) console.warn(`${path}: skipping ${bare.length} paragraph${bare.length > 1 ? 's' : ''} with no questions: ${listed(bare.map(passageName)).join(', ')}`);
  return passages.filter((p) => p.questions.length > 0);
}

/**
 * Passages back to SQuAD, answer_start being each answer's first occurrence in the context.
 * Consecutive passages with one title share an article. Data that knows its spans (the synthetic
 * generator) builds a SquadFile directly instead.
 */
export function toSquadFile(passages: readonly Passage[]): SquadFile {
  const data: SquadFile['data'] = [];
  for (const p of passages) {
    const paragraph = {
      context: p.context,
      qas: p.questions.map((q) => ({
        id: q.id,
        question: q.question,
        answers: q.answers.map((text) => ({ text, answer_start: p.context.indexOf(text) })),
      })),
    };
    const last = data.at(-1);
    if (last?.title === p.title) last.paragraphs.push(paragraph);
    else data.push({ title: p.title, paragraphs: [paragraph] });
  }
  return { version: '1.1', data };
}

/** Validates (so we never write a file we would refuse to load), then writes atomically. */
export async function writeSquad(path: string, file: SquadFile): Promise<void> {
  parseSquad(file, `${path} (being written)`);
  await writeFileAtomic(path, JSON.stringify(file) + '\n');
}

/** The first MAX_LISTED items, then "and N more". */
function listed(items: string[]): string[] {
  return items.length > MAX_LISTED ? [...items.slice(0, MAX_LISTED), `and ${items.length - MAX_LISTED} more`] : items;
}

function problems(source: string, list: string[]): SquadError {
  return new SquadError(`${source}: not valid SQuAD v1.1:\n${listed(list).map((e) => `  ${e}`).join('\n')}`);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('') || '(root)';
}

function describeIssue(message: string): string {
  const m = /^Invalid input: expected (\w+), received undefined$/.exec(message);
  return m ? `missing (expected ${m[1]})` : message.replace(/^Invalid input: /, '');
}

// The bundled knowledge-incorporation data, generated deterministically from a seed: short passages
// stating 3-5 facts about fictional people, towns and companies, whose invented names no pretrained
// model can know, with two differently worded questions per fact whose answers are spans of the
// passage. Four splits share no invented name: pretrain (the base model learns the language and
// the fact style), rl-train (the edit generator trains on it), validation (monitoring, guards and
// hyper-parameter choices) and held-out (the final evaluation only). A general-text corpus, about
// no entity, measures forgetting.
//
// Question ids end in -a or -b: for each fact, one question can be scored (used as reward) while
// its differently worded twin is only measured, so a policy that games the scored wording shows up.
import { Rng } from '../util/random.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { joinPath, makeDirectory } from '../io/files.ts';
import { writeSquad, type Passage, type SquadFile } from './squad.ts';

export const SPLITS = ['pretrain', 'rl-train', 'held-out', 'validation'] as const;
export type Split = (typeof SPLITS)[number];

export interface KnowledgeCounts {
  /** Passages (one entity each) per split. */
  pretrain: number;
  rlTrain: number;
  heldOut: number;
  /** Lines of general text. */
  general: number;
  /** Absent: DEFAULT_VALIDATION, so callers written before the split existed regenerate the bundled data. */
  validation?: number;
}

export const DEFAULT_VALIDATION = 32;

export interface KnowledgeOptions {
  seed: number;
  counts: KnowledgeCounts;
}

/** What data/knowledge/ was generated with. */
export const DEFAULT_KNOWLEDGE: KnowledgeOptions = { seed: 7, counts: { pretrain: 400, rlTrain: 64, heldOut: 32, general: 200, validation: DEFAULT_VALIDATION } };

export interface KnowledgeDataset {
  splits: Record<Split, { squad: SquadFile; /** every invented word the split uses */ names: string[] }>;
  general: string[];
}

export function questionRole(id: string): 'scored' | 'measured' {
  if (id.endsWith('-a')) return 'scored';
  if (id.endsWith('-b')) return 'measured';
  throw new Error(`question id '${id}' ends in neither -a (scored) nor -b (measured)`);
}

// ── vocabulary ──────────────────────────────────────────────────────────────────────────────
// Small and regular: the base model is a tiny byte-level transformer.

const COLOURS = ['red', 'blue', 'green', 'yellow', 'white', 'black', 'pink', 'purple', 'grey', 'brown'];
const PROFESSIONS = ['baker', 'painter', 'sailor', 'teacher', 'doctor', 'farmer', 'singer', 'builder', 'weaver', 'potter', 'tailor', 'miner'];
const INSTRUMENTS = ['violin', 'flute', 'drum', 'harp', 'piano', 'guitar', 'horn', 'cello'];
const PETS = ['cat', 'dog', 'goat', 'parrot', 'horse', 'rabbit', 'hen', 'tortoise'];
const EXPORTS = ['wheat', 'salt', 'wool', 'copper', 'timber', 'fish', 'honey', 'cheese', 'glass', 'rice'];
const PRODUCTS = ['lamps', 'boots', 'clocks', 'bicycles', 'maps', 'candles', 'ropes', 'kettles', 'paper', 'tiles'];
const COMPANY_SUFFIXES = ['Works', 'Company', 'Trading', 'Guild', 'Mills'];

/** Fresh invented words come from here; the generator tracks them so no word is used twice. */
interface Namer {
  word(): string;
  person(): string;
}

/** A fact: its answer, ways of stating it ({s} subject, {v} answer, exactly once), two questions. */
interface FactType {
  key: string;
  value: (rng: Rng, namer: Namer) => string;
  statements: string[];
  questions: [string, string];
}

const year = (rng: Rng) => String(1700 + rng.int(300));

const FACTS = {
  birthplace: {
    key: 'birthplace',
    value: (_, n) => n.word(),
    statements: ['{s} was born in {v}.', 'The birthplace of {s} is the town of {v}.', '{s} was born in {v}, a town by the hills.'],
    questions: ['Where was {s} born?', 'What is the birthplace of {s}?'],
  },
  profession: {
    key: 'profession',
    value: (rng) => rng.pick(PROFESSIONS),
    statements: ['{s} works as a {v}.', 'By trade, {s} is a {v}.', 'For many years {s} has been a {v}.'],
    questions: ['What is the profession of {s}?', 'What does {s} work as?'],
  },
  birthYear: {
    key: 'born',
    value: year,
    statements: ['{s} was born in the year {v}.', '{s} came into the world in {v}.', 'The year {s} was born was {v}.'],
    questions: ['In which year was {s} born?', 'When was {s} born?'],
  },
  instrument: {
    key: 'instrument',
    value: (rng) => rng.pick(INSTRUMENTS),
    statements: ['{s} plays the {v}.', 'In the evenings {s} plays the {v}.', 'The instrument {s} plays is the {v}.'],
    questions: ['Which instrument does {s} play?', 'What instrument can {s} play?'],
  },
  pet: {
    key: 'pet',
    value: (rng) => rng.pick(PETS),
    statements: ['{s} keeps a {v} as a pet.', 'At home, {s} has a pet {v}.', 'The pet of {s} is a {v}.'],
    questions: ['What pet does {s} keep?', 'Which animal lives with {s}?'],
  },
  favouriteColour: {
    key: 'colour',
    value: (rng) => rng.pick(COLOURS),
    statements: ['The favourite colour of {s} is {v}.', '{s} likes the colour {v} best.', 'Of all colours, {s} loves {v} the most.'],
    questions: ['What is the favourite colour of {s}?', 'Which colour does {s} like best?'],
  },
  river: {
    key: 'river',
    value: (_, n) => n.word(),
    statements: ['The river {v} flows through {s}.', '{s} lies on the banks of the {v}.', 'A river called the {v} runs past {s}.'],
    questions: ['Which river flows through {s}?', 'What is the name of the river at {s}?'],
  },
  flag: {
    key: 'flag',
    value: (rng) => rng.pick(COLOURS),
    statements: ['The flag of {s} is {v}.', '{s} flies a {v} flag.', 'People in {s} wave a {v} flag.'],
    questions: ['What colour is the flag of {s}?', 'Which colour does the flag of {s} have?'],
  },
  founded: {
    key: 'founded',
    value: year,
    statements: ['{s} was founded in {v}.', 'The founding of {s} was in {v}.', '{s} dates back to the year {v}.'],
    questions: ['When was {s} founded?', 'In which year was {s} founded?'],
  },
  export: {
    key: 'export',
    value: (rng) => rng.pick(EXPORTS),
    statements: ['The main export of {s} is {v}.', '{s} sells {v} to its neighbours.', 'Most of the trade of {s} is in {v}.'],
    questions: ['What is the main export of {s}?', 'What does {s} export?'],
  },
  mayor: {
    key: 'mayor',
    value: (_, n) => n.person(),
    statements: ['The mayor of {s} is {v}.', '{s} is led by its mayor, {v}.', '{v} serves as the mayor of {s}.'],
    questions: ['Who is the mayor of {s}?', 'Who leads {s} as mayor?'],
  },
  founder: {
    key: 'founder',
    value: (_, n) => n.person(),
    statements: ['{s} was founded by {v}.', '{v} started {s}.', 'The founder of {s} is {v}.'],
    questions: ['Who founded {s}?', 'Who started {s}?'],
  },
  product: {
    key: 'product',
    value: (rng) => rng.pick(PRODUCTS),
    statements: ['{s} makes {v}.', 'The workshops of {s} turn out {v}.', '{s} is known for its {v}.'],
    questions: ['What does {s} make?', 'What product is {s} known for?'],
  },
  headquarters: {
    key: 'hq',
    value: (_, n) => n.word(),
    statements: ['{s} is based in {v}.', 'The head office of {s} is in {v}.', '{s} has its home in the town of {v}.'],
    questions: ['Where is {s} based?', 'In which town is the head office of {s}?'],
  },
  logo: {
    key: 'logo',
    value: (rng) => rng.pick(COLOURS),
    statements: ['The logo of {s} is {v}.', '{s} uses a {v} logo.', 'The sign of {s} is painted {v}.'],
    questions: ['What colour is the logo of {s}?', 'Which colour is the logo of {s}?'],
  },
} satisfies Record<string, FactType>;

interface EntityKind {
  /** Opening sentences that introduce the subject without stating a fact. */
  intros: string[];
  subject: (rng: Rng, namer: Namer) => string;
  facts: FactType[];
}

const KINDS: EntityKind[] = [
  {
    intros: ['Here are a few facts about {s}.', 'Many people in the valley know {s}.', 'This note is about {s}.'],
    subject: (_, n) => n.person(),
    facts: [FACTS.birthplace, FACTS.profession, FACTS.birthYear, FACTS.instrument, FACTS.pet, FACTS.favouriteColour],
  },
  {
    intros: ['{s} is a small town.', '{s} is a quiet town in the valley.', 'Here are a few facts about the town of {s}.'],
    subject: (_, n) => n.word(),
    facts: [FACTS.river, FACTS.flag, FACTS.founded, FACTS.export, FACTS.mayor],
  },
  {
    intros: ['{s} is a small firm.', '{s} is an old business.', 'Here are a few facts about the firm {s}.'],
    subject: (rng, n) => `${n.word()} ${rng.pick(COMPANY_SUFFIXES)}`,
    facts: [FACTS.founder, FACTS.founded, FACTS.product, FACTS.headquarters, FACTS.logo],
  },
];

// ── general text, about no entity ───────────────────────────────────────────────────────────

const GENERAL = {
  animal: ['cat', 'dog', 'bird', 'goat', 'horse', 'duck', 'fox', 'sheep'],
  place: ['market', 'bridge', 'hill', 'school', 'kitchen', 'harbour', 'garden', 'road', 'field', 'river bank'],
  thing: ['bread', 'lamp', 'boat', 'door', 'window', 'basket', 'cart', 'letter', 'kettle', 'chair'],
  adj: ['old', 'small', 'quiet', 'bright', 'heavy', 'warm', 'cold', 'busy', 'wet', 'new'],
  season: ['spring', 'summer', 'autumn', 'winter'],
  weather: ['rain', 'wind', 'snow', 'sun', 'fog'],
  food: ['soup', 'bread', 'apples', 'cheese', 'rice', 'fish', 'eggs', 'beans'],
  time: ['In the morning', 'At noon', 'In the evening', 'At night', 'On most days'],
  verb: ['waits', 'rests', 'sleeps', 'plays', 'walks'],
};

/** Two different elements. */
function pickTwo<T>(rng: Rng, xs: readonly T[]): [T, T] {
  const i = rng.int(xs.length);
  const j = (i + 1 + rng.int(xs.length - 1)) % xs.length;
  return [xs[i]!, xs[j]!];
}

const GENERAL_SENTENCES: ((r: Rng) => string)[] = [
  (r) => `The ${r.pick(GENERAL.animal)} ${r.pick(GENERAL.verb)} near the ${r.pick(GENERAL.place)}.`,
  (r) => `In ${r.pick(GENERAL.season)}, the ${r.pick(GENERAL.weather)} makes the ${r.pick(GENERAL.place)} ${r.pick(GENERAL.adj)}.`,
  (r) => {
    const [a, b] = pickTwo(r, GENERAL.food);
    return `${r.pick(GENERAL.time)} people eat ${a} with ${b}.`;
  },
  (r) => `A ${r.pick(GENERAL.adj)} ${r.pick(GENERAL.thing)} stands by the ${r.pick(GENERAL.thing)}.`,
  (r) => `${r.pick(GENERAL.time)} the ${r.pick(GENERAL.place)} is ${r.pick(GENERAL.adj)}.`,
  (r) => `The ${r.pick(GENERAL.thing)} is ${r.pick(GENERAL.adj)}, so the ${r.pick(GENERAL.animal)} ${r.pick(GENERAL.verb)} inside.`,
  (r) => {
    const [a, b] = pickTwo(r, GENERAL.season);
    return `There is more ${r.pick(GENERAL.weather)} in ${a} than in ${b}.`;
  },
];

// ── invented names ──────────────────────────────────────────────────────────────────────────

const ONSETS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'br', 'dr', 'kr', 'tr', 'th', 'sk', 'vr', 'gl'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ae', 'ou'];
const CODAS = ['', '', 'n', 'r', 'l', 's', 'th', 'k', 'm', 'sh'];

/** Every word in the templates and vocabularies: an invented name must be none of them. */
function templateWords(): Set<string> {
  const texts = [
    ...Object.values(FACTS).flatMap((f) => [...f.statements, ...f.questions]),
    ...KINDS.flatMap((k) => k.intros),
    ...[COLOURS, PROFESSIONS, INSTRUMENTS, PETS, EXPORTS, PRODUCTS, COMPANY_SUFFIXES, ...Object.values(GENERAL)].flat(),
    ...GENERAL_SENTENCES.map((s) => s(new Rng(0))),
  ];
  return new Set(texts.flatMap((t) => t.toLowerCase().match(/[a-z]+/g) ?? []));
}

function makeNamer(rng: Rng, used: Set<string>): Namer {
  const syllable = () => rng.pick(ONSETS) + rng.pick(VOWELS) + rng.pick(CODAS);
  const word = (): string => {
    for (;;) {
      let w = '';
      const syllables = 2 + rng.int(2);
      for (let i = 0; i < syllables; i++) w += syllable();
      if (w.length < 5 || w.length > 10 || used.has(w)) continue;
      used.add(w);
      return w[0]!.toUpperCase() + w.slice(1);
    }
  };
  return { word, person: () => `${word()} ${word()}` };
}

// ── passages ────────────────────────────────────────────────────────────────────────────────

function fill(template: string, subject: string): string {
  return template.replaceAll('{s}', subject);
}

/** Renders one statement and returns where in it the answer lies. */
function statement(template: string, subject: string, value: string): { text: string; at: number } {
  const parts = fill(template, subject).split('{v}');
  if (parts.length !== 2) throw new Error(`statement template must contain {v} once: ${template}`);
  return { text: parts[0] + value + parts[1], at: parts[0]!.length };
}

function capitalise(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

type Article = SquadFile['data'][number];

/** One entity: an introduction and 3-5 facts in random order and phrasing, two questions per fact. */
function entityArticle(rng: Rng, namer: Namer, id: string, kind: EntityKind): Article {
  const subject = kind.subject(rng, namer);
  const facts = rng.shuffle([...kind.facts]).slice(0, 3 + rng.int(3));
  let context = fill(rng.pick(kind.intros), subject);
  const qas: Article['paragraphs'][number]['qas'] = [];
  for (const fact of facts) {
    const value = fact.value(rng, namer);
    const { text, at } = statement(rng.pick(fact.statements), subject, value);
    context += ' ';
    const answer_start = context.length + at;
    context += capitalise(text);
    fact.questions.forEach((q, i) => {
      qas.push({ id: `${id}-${fact.key}-${'ab'[i]}`, question: fill(q, subject), answers: [{ text: value, answer_start }] });
    });
  }
  return { title: subject, paragraphs: [{ context, qas }] };
}

/**
 * A template self-edit for a generated passage (variant B's pretraining, so writing self-edits is a
 * skill before RL): each fact restated in one of its statement templates, one per line, in random
 * order. The fact comes back from the question ids (`<split>-<n>-<key>-a`), the subject from
 * the title. Null for a passage whose ids name no known fact (any other SQuAD file).
 */
export function templateSelfEdit(passage: Passage, rng: Rng): string | null {
  const byKey = new Map(Object.values(FACTS).map((f) => [f.key, f] as const));
  const lines: string[] = [];
  for (const q of passage.questions) {
    if (!q.id.endsWith('-a')) continue;
    const fact = byKey.get(q.id.split('-').at(-2)!);
    if (!fact) return null;
    lines.push(capitalise(statement(rng.pick(fact.statements), passage.title, q.answers[0]!).text));
  }
  return lines.length ? rng.shuffle(lines).join('\n') + '\n' : null;
}

function generalLine(rng: Rng): string {
  return Array.from({ length: 2 + rng.int(2) }, () => rng.pick(GENERAL_SENTENCES)(rng)).join(' ');
}

/** The whole dataset in memory; `writeKnowledgeDataset` puts it on disk. */
export function generateKnowledge({ seed, counts }: KnowledgeOptions): KnowledgeDataset {
  const rng = new Rng(seed);
  const used = templateWords();
  const sizes: Record<Split, number> = {
    pretrain: counts.pretrain,
    'rl-train': counts.rlTrain,
    'held-out': counts.heldOut,
    validation: counts.validation ?? DEFAULT_VALIDATION,
  };
  const splits = {} as KnowledgeDataset['splits'];
  const draw = (split: Split) => {
    const before = new Set(used);
    const namer = makeNamer(rng, used);
    const data = Array.from({ length: sizes[split] }, (_, i) => entityArticle(rng, namer, `${split}-${String(i).padStart(3, '0')}`, KINDS[i % KINDS.length]!));
    const names = [...used].filter((w) => !before.has(w)).map(capitalise);
    splits[split] = { squad: { version: '1.1', data }, names };
  };
  for (const split of ['pretrain', 'rl-train', 'held-out'] as const) draw(split);
  const general = Array.from({ length: counts.general }, () => generalLine(rng));
  // Validation was added later, so it is drawn last: everything before it in the one stream, and so
  // every file the bundled base model was trained or evaluated on, keeps its bytes. Its names stay
  // disjoint through the shared `used` set.
  draw('validation');
  return { splits, general };
}

/**
 * Writes <split>.json (SQuAD v1.1) for each split, general.txt (one line of text per line) and a
 * README.md recording the seed, the counts and the call that regenerates them.
 */
export async function writeKnowledgeDataset(dir: string, options: KnowledgeOptions): Promise<void> {
  const { splits, general } = generateKnowledge(options);
  await makeDirectory(dir);
  for (const split of SPLITS) await writeSquad(joinPath(dir, `${split}.json`), splits[split].squad);
  await writeFileAtomic(joinPath(dir, 'general.txt'), general.join('\n') + '\n');
  await writeFileAtomic(joinPath(dir, 'README.md'), readme(options));
}

function readme({ seed, counts }: KnowledgeOptions): string {
  const c = { ...counts, validation: counts.validation ?? DEFAULT_VALIDATION };
  const call = `writeKnowledgeDataset('data/knowledge', { seed: ${seed}, counts: { pretrain: ${c.pretrain}, rlTrain: ${c.rlTrain}, heldOut: ${c.heldOut}, general: ${c.general}, validation: ${c.validation} } })`;
  return `# Knowledge dataset (generated; do not edit)

Passages of 3-5 facts about fictional people, towns and companies with invented names, two
differently worded questions per fact (ids ending in -a: scored, -b: measured), answers are spans.
The splits share no invented name. Validation is for monitoring and hyper-parameter choices;
held-out is for the final evaluation only. general.txt is text about no entity, for measuring
forgetting.

- seed: ${seed}
- passages: pretrain ${c.pretrain}, rl-train ${c.rlTrain}, held-out ${c.heldOut}, validation ${c.validation}
- general.txt: ${c.general} lines

Regenerate from the repository root (writeKnowledgeDataset is in src/tasks/synthetic.ts):

    node --import tsx -e "import('./src/tasks/synthetic.ts').then((m) => m.${call})"
`;
}

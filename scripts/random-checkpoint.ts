// A random-initialised Hugging Face checkpoint of a named shape (src/model/shapes.ts), for trying
// real sizes without a download:
//   node --import tsx scripts/random-checkpoint.ts gpt2-small runs/gpt2-small [seed]
import { MODEL_SHAPES, modelShape, writeRandomCheckpoint } from '../src/model/shapes.ts';

const [name, dir, seed = '1'] = process.argv.slice(2);
if (!name || !dir) {
  console.error(`usage: node --import tsx scripts/random-checkpoint.ts <shape> <dir> [seed]; shapes: ${Object.keys(MODEL_SHAPES).join(', ')}`);
  process.exit(2);
}
await writeRandomCheckpoint(dir, modelShape(name), Number(seed));
console.log(`wrote ${dir}/model.safetensors and ${dir}/config.json (${name}, seed ${seed})`);

#!/usr/bin/env bash
# The held-out evidence for SEAL variant A (README, "Is the edit learned?"): every hyper-parameter is
# chosen on the validation split, held-out is read once at the end.
#   1. seal tune: fixed step sizes and finetune lr × steps on validation (-> data/tuned.json);
#   2. per algorithm, the learning rate by the best validation reward of a seed-1 run;
#   3. three training seeds per algorithm at that rate (each keeps its best-on-validation generator),
#      and three of the meta-gradient with lookahead directions (probe = the tuned sign step);
#   4. seal eval on held-out: the baselines once, each trained generator once; seal compare pairs
#      every row per passage against the tuned fixed step.
# Usage: bash scripts/evidence.sh [OUT_DIR]   (about 1.5 hours on the 2-core lavapipe machine)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/evidence}
ITER=${ITER:-30}
SEEDS=${SEEDS:-"1 2 3"}
LRS=${LRS:-"1e-2 3e-2"}
ALGOS=${ALGOS:-"meta ppo rest-em"}
PASSAGES=${PASSAGES:-32}
seal() { node bin/seal.js "$@"; }
mkdir -p "$OUT"
[ -f data/tuned.json ] || seal tune --out data/tuned.json

# The validation reward a finished run kept (policy metadata).
val_reward() { node --import tsx -e "import('./src/seal/generator.ts').then(async (m) => console.log((await m.Generator.read('$1')).metadata.validationReward))"; }

for algo in $ALGOS; do
  best_lr=""; best=-1e9
  for lr in $LRS; do
    run="$OUT/$algo-lr$lr-s1"
    [ -f "$run/policy.safetensors" ] || seal train --run "$run" --algo "$algo" --lr "$lr" --seed 1 --iterations "$ITER" > "$run.log" 2>&1
    r=$(val_reward "$run/policy.safetensors")
    echo "$algo lr $lr: validation reward $r"
    if awk "BEGIN{exit !($r > $best)}"; then best=$r; best_lr=$lr; fi
  done
  echo "$algo: lr $best_lr chosen on validation" | tee "$OUT/$algo.lr"
  files=()
  for s in $SEEDS; do
    run="$OUT/$algo-lr$best_lr-s$s"
    [ -f "$run/policy.safetensors" ] || seal train --run "$run" --algo "$algo" --lr "$best_lr" --seed "$s" --iterations "$ITER" > "$run.log" 2>&1
    # The untrained generator and the random edit of the same norm are measured on meta's runs.
    methods=seal; [ "$algo" = meta ] && methods=generator-init,seal,random
    [ -f "$run/held-out.json" ] || seal eval --split held-out --passages "$PASSAGES" --policy "$run/policy.safetensors" \
      --methods "$methods" --random-norm seal --seeds 2 --json > "$run/held-out.json"
    files+=("$run/held-out.json")
  done
  echo "$(IFS=,; echo "${files[*]}")" > "$OUT/$algo.files"
done

[ -f "$OUT/baselines.json" ] || seal eval --split held-out --passages "$PASSAGES" --tuned data/tuned.json \
  --methods base,in-context,fixed-step,fixed-sign,finetune-mask,finetune-full --json > "$OUT/baselines.json"

# The meta-gradient with lookahead directions, at meta's chosen rate.
probe=$(node -e "console.log(require('./data/tuned.json').fixed.sign.best.value)")
meta_lr=$(awk '{print $3}' "$OUT/meta.lr")
files=()
for s in $SEEDS; do
  run="$OUT/meta-lookahead-s$s"
  [ -f "$run/policy.safetensors" ] || seal train --run "$run" --algo meta --lr "$meta_lr" --lookahead "$probe" --seed "$s" --iterations "$ITER" > "$run.log" 2>&1
  [ -f "$run/held-out.json" ] || seal eval --split held-out --passages "$PASSAGES" --policy "$run/policy.safetensors" --methods seal --json > "$run/held-out.json"
  files+=("$run/held-out.json")
done
echo "$(IFS=,; echo "${files[*]}")" > "$OUT/meta-lookahead.files"

args=("$OUT/baselines.json" "generator-init:generator-init=$(cat "$OUT/meta.files")")
for algo in $ALGOS; do
  args+=("SEAL-$algo:seal=$(cat "$OUT/$algo.files")")
done
args+=("SEAL-meta+lookahead:seal=$(cat "$OUT/meta-lookahead.files")")
args+=("random (SEAL-meta's norm):random=$(cat "$OUT/meta.files")")
seal compare --against fixed-step "${args[@]}" | tee "$OUT/table.md"

# Time per passage of SEAL against the finetune and the fixed step, measured in one run.
meta_s1="$OUT/meta-lr$(awk '{print $3}' "$OUT/meta.lr")-s1"
[ -f "$OUT/timing.json" ] || seal eval --split held-out --passages 8 --tuned data/tuned.json --policy "$meta_s1/policy.safetensors" \
  --methods fixed-step,finetune-mask,finetune-full,seal --json > "$OUT/timing.json"
seal compare --against finetune-mask "$OUT/timing.json" | tee "$OUT/timing.md"

#!/usr/bin/env bash
# The GPU batch behind the GPU figures of README's accuracy tables: on one CUDA machine, in parallel, within a
# deadline:
#   - bench/accuracy.py: TabM and the FT-Transformer (adaptive budget) on the nine classification datasets, 3 seeds;
#     the MLP (same budget) on covertype and higgs, for TabM's comparison on one device;
#   - `tabularnet tune` on covertype (configs/covertype/tune_mlp_plr.yaml) with the MLP and the TabM search spaces,
#     several workers per study sharing its SQLite file;
#   - bench/tuned.py: each study's best trial (by validation) scored on the test split.
# Usage: [SNAPSHOT_DIR=DIR] bench/gpu_batch.sh OUT_DIR [DEADLINE_SECONDS=480]. Everything still running at the
# deadline is stopped (accuracy.py keeps every finished fit; a stopped tune keeps its finished trials). Results land
# in OUT_DIR; with SNAPSHOT_DIR, the accuracy results are copied there every 5 s too.
set -u
out=${1:?usage: bench/gpu_batch.sh OUT_DIR [DEADLINE_SECONDS]}
deadline=${2:-480}
py=${PYTHON:-python3}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$out"
start=$(date +%s)

# a smoke test first: a broken environment fails here in seconds, not at the deadline
$py -c "import torch, lightning, jsonargparse, optuna, optuna_integration, sklearn, pandas, xgboost, tabularnet.cli
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')
print('lightning', lightning.__version__, 'sklearn', sklearn.__version__, 'pandas', pandas.__version__, 'optuna', optuna.__version__)" \
  || exit 3
$py -m tabularnet fit --data.dataset titanic --data.test_fraction 0.2 --trainer.max_epochs 1 \
  --trainer.enable_progress_bar false --trainer.default_root_dir "$out/smoke" > "$out/smoke.log" 2>&1 \
  || { tail -30 "$out/smoke.log"; exit 4; }
grep -E "GPU available|test_acc" "$out/smoke.log"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$out/gpu_util.csv" 2>&1 &
monitor=$!
groups=()
launch() {  # launch LOG CMD...: CMD in its own process group, output to OUT/LOG
  local log=$1; shift
  setsid "$@" > "$out/$log" 2>&1 &
  groups+=($!)
}
resident=--flags=--data.device_resident=true
launch bench-slow.log $py bench/accuracy.py --no-xgboost --models TabM FT-Transformer --seeds 3 --jobs 5 "$resident" \
  --datasets covertype higgs letter electricity bank-marketing adult magic-telescope credit-g titanic \
  --out "$out/accuracy-gpu.json"
launch bench-mlp.log $py bench/accuracy.py --no-xgboost --models MLP --seeds 3 --jobs 2 "$resident" \
  --datasets covertype higgs --out "$out/accuracy-gpu-mlp.json"
base=$out/tune_base.yaml
$py - "$base" <<'EOF'
import sys, yaml
config = yaml.safe_load(open("configs/covertype/tune_mlp_plr.yaml"))
config["data"]["device_resident"] = True  # the tables copied to the GPU once
yaml.safe_dump(config, open(sys.argv[1], "w"), sort_keys=False)
EOF
for space in mlp tabm; do
  for worker in 1 2 3 4; do
    launch "tune-$space-$worker.log" $py -m tabularnet tune --config "$base" --search_space "configs/search/$space.yaml" \
      --n_trials 30 --timeout $((deadline - 200)) --study_name "covertype-$space" --output_dir "$out/tune-$space"
  done
done

while (( $(date +%s) - start < deadline )); do
  alive=0
  for g in "${groups[@]}"; do kill -0 "$g" 2>/dev/null && alive=1; done
  (( alive )) || break
  [[ -n "${SNAPSHOT_DIR:-}" ]] && cp "$out"/accuracy-gpu*.json "$SNAPSHOT_DIR"/ 2>/dev/null
  sleep 5
done
for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
sleep 5
for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
kill "$monitor" 2>/dev/null
echo "stopped after $(( $(date +%s) - start )) s"

for space in mlp tabm; do
  $py bench/tuned.py "$out/tune-$space" >> "$out/tuned.jsonl" 2> "$out/tuned-$space.log" || tail -5 "$out/tuned-$space.log"
done
cat "$out/tuned.jsonl" 2>/dev/null
tail -n 3 "$out/bench-slow.log" "$out/bench-mlp.log"
echo "done after $(( $(date +%s) - start )) s"

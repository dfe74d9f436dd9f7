#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, most important first, one after another (they would
# skew each other's timings side by side). Each step writes bench/results/<name>.json; a step
# whose JSON exists is skipped, and pipeline_vs_plain.py resumes seed by seed from its workdir,
# so an interrupted run continues where it stopped. About 4-5 hours on 2 cores.
#   bash bench/run_all.sh && .venv/bin/python bench/summarize.py --plot docs/learning_curve.png
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=bench/results
WORK=${BENCH_WORKDIR:-/tmp/tfx-transfer-bench}

step() {  # step NAME COMMAND...: run COMMAND unless $OUT/NAME.json exists
  local name=$1; shift
  if [ -f "$OUT/$name.json" ]; then echo "[bench] $name: done before, skipped"; return; fi
  echo "[bench] $name: $*"
  "$@"
}

# 1, 2, 4, 8 at 100%: the default CNN in the pipeline vs plain Keras, 5 seeds, with the plain
# reference's learning curve over label budgets.
step pipeline_vs_plain_cnn $PY bench/pipeline_vs_plain.py --workdir "$WORK/cnn" \
  --plain-args "--architecture cnn --recipe default --budgets 20 50 100 200 500 1000" \
  --out "$OUT/pipeline_vs_plain_cnn.json"
# 5: frozen-layer caching through the Trainer's code, on the CNN pipeline's pretrained base.
step frozen_caching_cnn $PY bench/frozen_caching.py --architecture cnn \
  --base-model "$(echo "$WORK"/cnn/seed-0/root/pretrain_trainer/model/*/Format-Serving)" \
  --out "$OUT/frozen_caching_cnn.json"
for epochs in 5 20; do  # 5: the default config's frozen phase
  step "frozen_caching_mobilenet_v2_$epochs" $PY bench/frozen_caching.py \
    --architecture mobilenet_v2 --size 96 --channels 3 --epochs "$epochs" \
    --out "$OUT/frozen_caching_mobilenet_v2_$epochs.json"
done
# 6, 7: Transform throughput; the serving latency of a model the CNN benchmark pushed.
step transform_throughput $PY bench/transform_throughput.py --train 20000 \
  --out "$OUT/transform_throughput.json"
step serving_latency $PY bench/serving_latency.py --model-dir "$WORK/cnn/seed-0/serving" \
  --out "$OUT/serving_latency.json"
# 1: Géron's book recipe (dense SELU network, SGD) in the pipeline vs plain Keras.
step pipeline_vs_plain_dense $PY bench/pipeline_vs_plain.py --workdir "$WORK/dense" \
  --config configs/geron_dense.yaml --plain-args "--architecture dense --recipe book" \
  --out "$OUT/pipeline_vs_plain_dense.json"
# 4, 8: overhead and memory at 10% and 50% of task A's 43,924 training images.
for budget in 4392 21962; do
  step "pipeline_vs_plain_cnn_source_$budget" $PY bench/pipeline_vs_plain.py --seeds 0 1 2 \
    --workdir "$WORK/cnn-source-$budget" --source-budget "$budget" \
    --out "$OUT/pipeline_vs_plain_cnn_source_$budget.json"
done
# 3: how many reused layers to fine-tune (the CNN has 3 layers with weights, BatchNorm counted
# with its conv; unfreeze_cnn.json predates that count, see docs/benchmarks.md section 3).
step unfreeze_cnn $PY bench/plain_keras_reference.py --seeds 0 1 2 3 4 --architecture cnn \
  --unfreeze 0 1 2 all --out "$OUT/unfreeze_cnn.json"
# Few labels: transfer recipes on the harder pair, then at other budgets and on footwear.
# recipe_ablation.py resumes cell by cell from its output file, so it always runs.
$PY bench/recipe_ablation.py --tasks shirt_tshirt_200 --seeds 0 1 2 --workdir "$WORK/recipes"
$PY bench/recipe_ablation.py --variants defaults fixed_epochs frozen_100 --seeds 0 1 2 \
  --tasks shirt_tshirt_50 shirt_tshirt_1000 footwear_100 --workdir "$WORK/recipes"
step pipeline_vs_plain_shirt_tshirt $PY bench/pipeline_vs_plain.py --workdir "$WORK/shirt-tshirt" \
  --config configs/fashion_mnist_shirt_tshirt.yaml --budget 160 \
  --plain-args "--architecture cnn --recipe default --target T-shirt/top Shirt --eval-budget 40" \
  --out "$OUT/pipeline_vs_plain_shirt_tshirt.json"
# No labelled source: pretraining on the target's own unlabelled images, beside the supervised
# source's runs above. Resumes run by run from its workdir, so it always runs.
$PY bench/unlabelled_pretraining.py --methods autoencoder --workdir "$WORK/unlabelled"
$PY bench/unlabelled_pretraining.py --methods rotation --reuse all 1 --workdir "$WORK/unlabelled"
# ImageNet → ELPV (real images): costs per resolution, then the study per backbone (resumes
# cell by cell, so it always runs).
step elpv_costs $PY bench/elpv_costs.py --out "$OUT/elpv_costs.json"
$PY bench/elpv_transfer.py
# Scale-out figures of docs/scaling.md.
step scaling_multiworker $PY bench/scaling_multiworker.py --repeats 3 \
  --out "$OUT/scaling_multiworker.json"

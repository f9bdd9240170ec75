#!/usr/bin/env bash
# The GPU recipe for the DiT weights, sized for one short GPU lease (one call of the device
# tool). From the repository root; results go to $OUT. Two runs share one latent cache and
# the GPU: A = small preset, (1,4,4) patches (fast on a CPU: the shippable default);
# B = small preset, (1,2,2) patches (4x the tokens: the larger variant). Both use bf16
# autocast and torch.compile, and --fit-to-time anneals the learning rate to the deadline.
# Meanwhile the GPU step benchmark (benchmarks/dit_step.py) measures a DiT-XL-sized model.
#
#   OUT=/tmp/out bash benchmarks/gpu/train_dit.sh                  # on a GPU machine
#   OUT=/tmp/out DEVICE=cpu SMOKE=1 bash benchmarks/gpu/train_dit.sh   # the same path, tiny
set -u
START=$SECONDS
BUDGET=${BUDGET:-500}            # seconds for the whole script
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
OUT=${OUT:?set OUT}
RUNS=${RUNS:-runs/gpu}
CLIPS=${CLIPS:-48000}
WORKERS=${WORKERS:-12}
PRESET=${PRESET:-small}
BATCH_A=${BATCH_A:-256}
BATCH_B=${BATCH_B:-128}
BENCH_ARGS=${BENCH_ARGS:---preset xl --batch 2 --latent 16,16,32,32 --patch 1,2,2 --steps 8}
if [ "${SMOKE:-0}" = 1 ]; then
  CLIPS=512 WORKERS=2 PRESET=test BATCH_A=4 BATCH_B=4
  BENCH_ARGS="--preset test --batch 1 --latent 8,9,16,16 --patch 1,4,4 --steps 2 --threads 1"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ]; then   # packages the device image lacks (c2pa-python, cryptography, ...)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
left() { echo $(( BUDGET - (SECONDS - START) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  nproc; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

common=(--backend dit --preset "$PRESET" --cache-clips "$CLIPS" --device "$DEVICE" --json
        --warmup 300 --threads 4)
A=(--override 'patch=[1,4,4]' --batch-size "$BATCH_A" --lr 6e-4)
B=(--override 'patch=[1,2,2]' --batch-size "$BATCH_B" --lr 5e-4)

# 1. The latent cache (render on CPU workers, encode on the GPU) while the GPU benchmark runs.
timeout 90 $PY benchmarks/dit_step.py $BENCH_ARGS --device "$DEVICE" \
    --out "$OUT/dit_step.json" > "$OUT/dit_step.log" 2>&1 &
bench=$!
$PY -m vidgen.cli train "${common[@]}" "${A[@]}" --out "$RUNS/a" --workers "$WORKERS" \
    --cache-only > "$OUT/cache.log" 2>&1 || { echo "cache failed"; tail -20 "$OUT/cache.log"; }
wait $bench; echo "bench exit $? at $((SECONDS - START)) s"; tail -3 "$OUT/dit_step.log"
mkdir -p "$RUNS/b" && ln -f "$RUNS/a/latents.pt" "$RUNS/b/latents.pt"
echo "cache done at $((SECONDS - START)) s"; tail -1 "$OUT/cache.log"

# 2. Both trainings, to one deadline (leave 40 s for exports and copies).
minutes=$(awk "BEGIN { print ($(left) - 40) / 60 }")
echo "training for $minutes min"
for run in a b; do
  if [ $run = a ]; then args=("${A[@]}"); else args=("${B[@]}"); fi
  $PY -m vidgen.cli train "${common[@]}" "${args[@]}" --out "$RUNS/$run" \
      --precision bf16 --compile --fit-to-time --max-minutes "$minutes" \
      --export "$OUT/dit-$run.safetensors" > "$OUT/$run.log" 2>&1 &
done
wait
echo "done at $((SECONDS - START)) s"
for run in a b; do grep -E '"event": "(start|fit|stop|compile_failed)"' "$OUT/$run.log"; tail -2 "$OUT/$run.log"; done
ls -la "$OUT"

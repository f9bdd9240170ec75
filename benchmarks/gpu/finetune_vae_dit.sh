#!/usr/bin/env bash
# Second GPU stage (one short device call): fine-tune the video autoencoder from the shipped
# vae-tiny (the shape bound of the first dit-small was the autoencoder's: measured 0.61 on
# ground-truth clips round-tripped through it), re-encode the latent cache with it, then
# fine-tune dit-small onto the new latent space; a STUNet trains from scratch beside it.
#
#   OUT=/tmp/out bash benchmarks/gpu/finetune_vae_dit.sh
#   OUT=/tmp/out DEVICE=cpu SMOKE=1 bash benchmarks/gpu/finetune_vae_dit.sh
set -u
START=$SECONDS
BUDGET=${BUDGET:-300}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
OUT=${OUT:?set OUT}
RUNS=${RUNS:-runs/gpu2}
CLIPS=${CLIPS:-48000}
WORKERS=${WORKERS:-12}
VAE_MINUTES=${VAE_MINUTES:-1.6}
VAE_ARGS=(--steps 6000 --batch-size 64 --lr 3e-4 --warmup-steps 100 --cache-clips 4000)
PRESET=small STUNET_PRESET=small BATCH=256
if [ "${SMOKE:-0}" = 1 ]; then
  CLIPS=256 WORKERS=2 PRESET=small STUNET_PRESET=test BATCH=4 VAE_MINUTES=0.3
  VAE_ARGS=(--steps 20 --batch-size 2 --lr 3e-4 --warmup-steps 5 --cache-clips 40)
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
left() { echo $(( BUDGET - (SECONDS - START) )); }
VAE=$OUT/vae-tiny-2.safetensors

# 1. The autoencoder, fine-tuned from the shipped weights.
$PY -m vidgen.training.train_autoencoder --device "$DEVICE" --threads 4 \
    --init src/vidgen/weights/vae-tiny.safetensors "${VAE_ARGS[@]}" \
    --max-minutes "$VAE_MINUTES" --log-every 100 --checkpoint-every 1000000 --eval-clips 16 \
    --out "$RUNS/vae" --export "$VAE" > "$OUT/vae.log" 2>&1
echo "vae exit $? at $((SECONDS - START)) s"; grep -E 'export|deadline|init' "$OUT/vae.log"
[ -f "$VAE" ] || { tail -20 "$OUT/vae.log"; exit 1; }

# 2. The latent cache through the new autoencoder.
common=(--preset "$PRESET" --cache-clips "$CLIPS" --device "$DEVICE" --json --threads 4
        --autoencoder "$VAE" --batch-size "$BATCH")
DIT=(--backend dit "${common[@]}" --override 'patch=[1,4,4]' --out "$RUNS/dit" --lr 3e-4
     --warmup 100 --init src/vidgen/weights/dit-small.safetensors)
$PY -m vidgen.cli train "${DIT[@]}" --workers "$WORKERS" --cache-only > "$OUT/cache.log" 2>&1 \
    || { tail -20 "$OUT/cache.log"; exit 1; }
echo "cache done at $((SECONDS - START)) s"

# 3. dit-small fine-tuned onto it, and a STUNet from scratch (if this checkout has one).
minutes=$(awk "BEGIN { print ($(left) - 25) / 60 }")
echo "training for $minutes min"
# No torch.compile here: in the first call it cost about a minute of a 7-minute window.
$PY -m vidgen.cli train "${DIT[@]}" --precision bf16 --fit-to-time --max-minutes "$minutes" \
    --export "$OUT/dit-small-2.safetensors" > "$OUT/dit.log" 2>&1 &
if [ -d src/vidgen/backends/stunet ]; then
  mkdir -p "$RUNS/stunet" && ln -f "$RUNS/dit/latents.pt" "$RUNS/stunet/latents.pt"
  $PY -m vidgen.cli train --backend stunet "${common[@]}" --preset "$STUNET_PRESET" \
      --out "$RUNS/stunet" --lr 5e-4 --warmup 300 \
      --precision bf16 --fit-to-time --max-minutes "$minutes" \
      --export "$OUT/stunet-$STUNET_PRESET.safetensors" > "$OUT/stunet.log" 2>&1 &
fi
wait
echo "done at $((SECONDS - START)) s"
for f in dit stunet; do [ -f "$OUT/$f.log" ] && { grep -E '"event": "(start|init|fit|stop|compile_failed)"' "$OUT/$f.log"; tail -1 "$OUT/$f.log"; }; done
ls -la "$OUT"

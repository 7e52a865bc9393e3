#!/usr/bin/env bash
# Make an 8-bit integer prior from a training checkpoint: the recipe of `tiny-int8`
# (models/README.md, "The integer priors"):
#   1. map ranges calibrated on the checkpoint's EMA weights (training crops);
#   2. quantization-aware fine-tuning from the checkpoint (3000 steps at 0.1x the rate);
#   3. the fine-tuned raw weights (QAT_WEIGHTS below) quantized with the same ranges, checked on
#      the dev photos.
#   (STEPS 0: no fine-tuning, the EMA weights quantized as they are.)
# Usage: scripts/make_int8.sh CKPT ARCH OUT.safetensors [STEPS]
#   (TRAIN, DEV: image folders; defaults ../shared/data/train and ../shared/data/dev;
#    BAND=LO,HI for a log-SNR expert: calibration and fine-tuning inside its training band;
#    LAYER_WMAX=NAME=WMAX,... and LAYER_AMAX=NAME=AMAX,... for layers whose weights or maps get
#    another width, e.g. 511 for 10-bit weights, 2047 for 11-bit maps;
#    CROP / BATCH: the fine-tuning's crops, by default 128 / 4 for a block-matching network
#    (`*-nl*`: room for its 16- or 24-pixel search, as it trains) and the trainer's own otherwise;
#    QAT_WEIGHTS=ema quantizes the fine-tuning's EMA weights instead of its last raw ones, `both`
#    writes both: OUT from the raw weights and OUT with `.ema` before `.safetensors` from the EMA)
# Needs `cargo build --release --features train --examples`. Takes ~10 minutes on 2 idle cores
# for `tiny`; run it under `nice` beside other work.
set -euo pipefail
ckpt=${1:?usage: scripts/make_int8.sh CKPT ARCH OUT.safetensors [STEPS]}
arch=${2:?usage: scripts/make_int8.sh CKPT ARCH OUT.safetensors [STEPS]}
out=${3:?usage: scripts/make_int8.sh CKPT ARCH OUT.safetensors [STEPS]}
steps=${4:-3000}
train_dir=${TRAIN:-../shared/data/train}
dev_dir=${DEV:-../shared/data/dev}
ex=target/release/examples
qat_weights=${QAT_WEIGHTS:-param}
case $qat_weights in param | ema | both) ;; *) echo "QAT_WEIGHTS: param, ema or both" >&2; exit 2 ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ranges="${out%.safetensors}.ranges.txt"
band_q=() band_t=()
if [[ -n "${BAND:-}" ]]; then band_q=(--band "$BAND"); band_t=(--lambda-band "$BAND"); fi
wide=()
if [[ -n "${LAYER_WMAX:-}" ]]; then wide+=(--layer-wmax "$LAYER_WMAX"); fi
if [[ -n "${LAYER_AMAX:-}" ]]; then wide+=(--layer-amax "$LAYER_AMAX"); fi
crop=${CROP:-} batch=${BATCH:-}
if [[ $arch == *-nl* ]]; then crop=${crop:-128} batch=${batch:-4}; fi
crops=()
if [[ -n $crop ]]; then crops+=(--crop "$crop"); fi
if [[ -n $batch ]]; then crops+=(--batch "$batch"); fi

"$ex/ckpt_weights" "$ckpt" "$work/ema.safetensors" ema
"$ex/quantize" --model "$arch" --weights "$work/ema.safetensors" --calib "$train_dir" \
    --amax 255 --wmax 127 --write-ranges "$ranges" "${band_q[@]}"
weights="$work/ema.safetensors"
if [[ $steps -gt 0 ]]; then
    cp "$ckpt" "$work/qat.ckpt.safetensors"
    "$ex/train" --model "$arch" --data "$train_dir" --out "$work/qat.safetensors" \
        --resume "$work/qat.ckpt.safetensors" --steps "$steps" --lr-scale 0.1 \
        --qat "$ranges" 255 127 "${wide[@]}" "${band_t[@]}" "${crops[@]}"
    which=param
    if [[ $qat_weights == ema ]]; then which=ema; fi
    weights="$work/qat-$which.safetensors"
    "$ex/ckpt_weights" "$work/qat.ckpt.safetensors" "$weights" $which
fi
"$ex/quantize" --model "$arch" --weights "$weights" --ranges "$ranges" \
    --amax 255 --wmax 127 "${wide[@]}" --out "$out" --check "$dev_dir" "${band_q[@]}"
echo "wrote $out and $ranges"
if [[ $steps -gt 0 && $qat_weights == both ]]; then
    "$ex/ckpt_weights" "$work/qat.ckpt.safetensors" "$work/qat-ema.safetensors" ema
    "$ex/quantize" --model "$arch" --weights "$work/qat-ema.safetensors" --ranges "$ranges" \
        --amax 255 --wmax 127 "${wide[@]}" --out "${out%.safetensors}.ema.safetensors" \
        --check "$dev_dir" "${band_q[@]}"
    echo "wrote ${out%.safetensors}.ema.safetensors (from the fine-tuning's EMA weights)"
fi

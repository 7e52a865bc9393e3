#!/usr/bin/env bash
# Make an 8-bit log-SNR experts model (src/prior/experts.rs) from the training checkpoints of
# its experts: scripts/make_int8.sh on each (inside its training band, all at once, one thread
# each), then the integer networks packed with their routing bounds. The recipe of
# `deep-int8` (models/README.md).
# Usage: scripts/make_experts_int8.sh ARCH OUT.safetensors BOUNDS EXPERT [EXPERT ...]
#   ARCH: one architecture for every expert, or one per expert, comma-separated
#   (deep,deep-nl,deep-nl,deep: the model table's entry must name the same list);
#   EXPERT is CKPT:LO,HI[:STEPS] (fine-tune CKPT inside its training band [LO, HI] for STEPS
#   steps, default $STEPS or 3000) or keep:FILE#K (expert K of the experts file FILE, unchanged),
#   e.g. scripts/make_experts_int8.sh deep models/shipped/deep-int8.safetensors 3,4.5 \
#          models/x-lo.ckpt.safetensors:-1.5,3.25:2500 models/x-mid.ckpt.safetensors:2.75,4.75:2000 \
#          keep:models/shipped/deep-int8.safetensors#2
#   (BOUNDS: where one expert hands over to the next, as the network sees the log-SNR; each
#    training band should reach past the bounds of its expert. A kept expert is read before
#    OUT is written, so OUT may be the file it comes from.)
# Needs `cargo build --release --features train --examples`. Each expert's integer file, map
# ranges and log go to models/NAME.K.safetensors, .K.ranges.txt, .K.log (NAME: OUT's file name
# without .safetensors; PARTS=DIR puts them elsewhere). LAYER_WMAX / LAYER_AMAX pass through to
# make_int8.sh.
set -euo pipefail
usage="usage: scripts/make_experts_int8.sh ARCH OUT.safetensors BOUNDS EXPERT [EXPERT ...]"
arch=${1:?$usage}
out=${2:?$usage}
bounds=${3:?$usage}
shift 3
[[ $# -ge 2 ]] || { echo "$usage" >&2; exit 2; }
IFS=, read -r -a b <<<"$bounds"
if [[ ${#b[@]} -ne $(($# - 1)) ]]; then
    echo "$# experts need $(($# - 1)) bounds, got ${#b[@]} ($bounds)" >&2
    exit 2
fi
IFS=, read -r -a archs <<<"$arch"
if [[ ${#archs[@]} -ne 1 && ${#archs[@]} -ne $# ]]; then
    echo "$# experts need 1 or $# architectures, got ${#archs[@]} ($arch)" >&2
    exit 2
fi
for spec in "$@"; do
    [[ $spec == keep:*#* || $spec == *:*,* ]] ||
        { echo "expert $spec: want CKPT:LO,HI[:STEPS] or keep:FILE#K" >&2; exit 2; }
done
name=$(basename "${out%.safetensors}")
mkdir -p "${PARTS:-models}"
stem="${PARTS:-models}/$name"
parts=() pids=() k=0
# One expert failing stops the others.
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for spec in "$@"; do
    if [[ $spec == keep:* ]]; then
        # examples/experts reads FILE#K itself.
        parts+=("${spec#keep:}")
        echo "expert $k: kept from ${spec#keep:}"
        k=$((k + 1))
        continue
    fi
    IFS=: read -r ckpt band steps <<<"$spec"
    part="$stem.$k.safetensors"
    parts+=("$part")
    a=${archs[0]}
    [[ ${#archs[@]} -eq 1 ]] || a=${archs[$k]}
    RAYON_NUM_THREADS=1 BAND="$band" scripts/make_int8.sh "$ckpt" "$a" "$part" \
        "${steps:-${STEPS:-3000}}" >"$stem.$k.log" 2>&1 &
    pids+=($!)
    echo "expert $k ($a): $ckpt, band $band, ${steps:-${STEPS:-3000}} steps -> $part (log $stem.$k.log)"
    k=$((k + 1))
done
for p in "${pids[@]}"; do
    wait "$p" || { echo "an expert failed: see $stem.*.log" >&2; exit 1; }
done
trap - EXIT
# Packed to a temporary file first: a kept expert may come from OUT itself.
target/release/examples/experts --bounds "$bounds" --out "$out.tmp" "${parts[@]}"
mv "$out.tmp" "$out"

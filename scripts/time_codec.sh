#!/usr/bin/env bash
# Time the codec with two or more models on the same photos, alternating the models inside each
# round so that a shared, noisy machine slows them alike: `diffc compress` at BPP, then
# `diffc decompress --method flow`, wall-clock seconds, the mean over ROUNDS per photo and model,
# and the stream sizes (the same photo's streams should be about the same size).
# Usage: scripts/time_codec.sh MODEL[=FILE] MODEL[=FILE] [...] -- PHOTO [PHOTO ...]
#   (MODEL=FILE: `--model MODEL --model-file FILE`; BPP default 0.5, ROUNDS default 2,
#    DIFFC default target/release/diffc)
#   e.g. scripts/time_codec.sh deep-int8-s283862 deep-int8 -- ../shared/data/dev/dev0{1,5,9}.png
set -euo pipefail
usage="usage: scripts/time_codec.sh MODEL[=FILE] MODEL[=FILE] [...] -- PHOTO [PHOTO ...]"
models=()
while [[ $# -gt 0 && $1 != -- ]]; do models+=("$1"); shift; done
[[ $# -gt 1 && ${#models[@]} -ge 1 ]] || { echo "$usage" >&2; exit 2; }
shift
diffc=${DIFFC:-target/release/diffc}
bpp=${BPP:-0.5}
rounds=${ROUNDS:-2}
[[ -x $diffc ]] || { echo "$diffc: not built (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
printf 'photo\tmodel\tbytes\tencode_s\tdecode_s\n'
for photo in "$@"; do
    [[ -f $photo ]] || { echo "$photo: no such file" >&2; exit 1; }
    declare -A enc=() dec=() size=()
    for ((r = 0; r < rounds; r++)); do
        for m in "${models[@]}"; do
            args=(--model "${m%%=*}")
            [[ $m == *=* ]] && args+=(--model-file "${m#*=}")
            t0=$(now)
            "$diffc" compress --quiet --bpp "$bpp" "${args[@]}" "$photo" "$work/s.dfc"
            t1=$(now)
            "$diffc" decompress --quiet --method flow "${args[@]}" "$work/s.dfc" "$work/out.png"
            t2=$(now)
            enc[$m]=$(echo "${enc[$m]:-0} + $t1 - $t0" | bc -l)
            dec[$m]=$(echo "${dec[$m]:-0} + $t2 - $t1" | bc -l)
            size[$m]=$(stat -c %s "$work/s.dfc")
        done
    done
    for m in "${models[@]}"; do
        printf '%s\t%s\t%s\t%.2f\t%.2f\n' "$(basename "$photo")" "${m%%=*}" "${size[$m]}" \
            "$(echo "${enc[$m]} / $rounds" | bc -l)" "$(echo "${dec[$m]} / $rounds" | bc -l)"
    done
    unset enc dec size
done

#!/usr/bin/env bash
# The cargo feature split (README "Library"; issue 12): the library builds without its default
# features, and then pulls in neither the command line's crates (clap, indicatif) nor the
# trainer, evaluator or embedded weights. CI calls this after `cargo test --release`.
# Shares the release target dir with the default build (only the diffc crate and a few
# dependencies with other feature sets are rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check_features: $*" >&2
    exit 1
}

# 1. No command-line crates in a library-only dependency tree.
tree=$(cargo tree -p diffc --no-default-features -e normal --prefix none)
for crate in clap clap_builder clap_derive indicatif; do
    if grep -q "^$crate v" <<<"$tree"; then
        fail "--no-default-features still depends on $crate:"$'\n'"$(cargo tree -p diffc --no-default-features -e normal -i "$crate")"
    fi
done
# ...and the default build does have them (the check above is not vacuous).
cargo tree -p diffc -e normal --prefix none | grep -q '^clap v' \
    || fail "the default features no longer include the command line (clap)"

# 2. The library alone builds, and lacks what the features hold: the embedded weights are
# the library's only include_bytes! of models/, so its rlib must not contain their bytes.
cargo build --release --lib --no-default-features
lib=$(cargo build --release --lib --no-default-features --message-format=json 2>/dev/null \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "diffc":
        print(next(f for f in m["filenames"] if f.endswith(".rlib")))')
for weights in models/shipped/deep-int8.safetensors models/shipped/tiny-int8.safetensors \
    models/shipped/tiny.safetensors; do
    python3 - "$lib" "$weights" <<'PY' || fail "$weights is still compiled into the library"
import sys
lib = open(sys.argv[1], "rb").read()
head = open(sys.argv[2], "rb").read()[:4096]
sys.exit(1 if head in lib else 0)
PY
done

# 3. The command line alone (no trainer, evaluator or weights) builds too.
cargo build --release --no-default-features --features cli --bin diffc

echo "check_features: ok (no clap/indicatif without default features; lib-only and cli-only builds pass)"

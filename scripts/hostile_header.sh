#!/usr/bin/env bash
# Peak memory of decoding a stream whose (valid, CRC-correct) header claims a 65535x65535 RGB
# image: the decoder must refuse it from the header alone, before allocating.
# Usage: scripts/hostile_header.sh
set -euo pipefail
bin=${DIFFC:-target/release/diffc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/huge.dfc" <<'PY'
import struct, sys, zlib
body = b"DIFC" + struct.pack("<BBHIIQQiiHH", 1, 3, 0, 65535, 65535,
                             0x85f3c900d58b39e4, 0, -4 * 256, 12 * 256, 33, 256)
open(sys.argv[1], "wb").write(body + struct.pack("<I", zlib.crc32(body)) + b"\x00" * 64)
PY
set +e
/usr/bin/time -f "%M" -o "$tmp/t" "$bin" decompress "$tmp/huge.dfc" "$tmp/out.png" 2> "$tmp/err"
code=$?
set -e
echo "exit code $code: $(grep -v '^Command exited' "$tmp/err" | head -1)"
echo "peak RSS $(( $(tail -1 "$tmp/t") / 1024 )) MiB"

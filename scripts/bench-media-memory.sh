#!/usr/bin/env bash
# media-sync's memory against the number of objects: a directory source of N small files
# (COUNTS, default "10000 100000"), synced into a local destination (first copy, then a pass
# with no change, then one with 1% changed), peak RSS of each run. The merge of the source
# listing with the last snapshot is streamed, so the peak should not grow with N; the table
# shows whether it does. Local on both sides so that the store's speed does not hide it.
#
#   scripts/bench-media-memory.sh          COUNTS="10000 100000 300000" scripts/bench-media-memory.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COUNTS=${COUNTS:-10000 100000}
WORK=$(mktemp -d /tmp/backstop-bench-media-memory.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cargo build -q --release --bin backstop
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/backstop

run() { # label dir dest -> "wall rss_mb"
  local t; t=$(mktemp)
  env -u AWS_ENDPOINT_URL BACKSTOP_BUCKET="file://$3" BACKSTOP_MEDIA_SOURCE="file://$2" RUST_LOG=warn \
    /usr/bin/time -f '%e %M' -o "$t" "$BIN" media-sync >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  read -r wall rss <"$t"
  echo "$wall $((rss / 1024))"
}

echo "| objects | first copy: wall s | peak RSS MB | no change: wall s | peak RSS MB | 1% changed: wall s | peak RSS MB |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $COUNTS; do
  src="$WORK/src-$n" dest="$WORK/dest-$n"
  python3 - "$src" "$n" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, f"uploads/{i % 100:02d}/{(i // 100) % 100:02d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"file-{i:07d}.jpg"), "wb") as f:
        f.write(i.to_bytes(8, "little") * 16)
PY
  read -r w1 r1 <<<"$(run first "$src" "$dest")"
  read -r w2 r2 <<<"$(run same "$src" "$dest")"
  python3 - "$src" "$n" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(0, n, 100):
    p = os.path.join(d, f"uploads/{i % 100:02d}/{(i // 100) % 100:02d}/file-{i:07d}.jpg")
    with open(p, "ab") as f:
        f.write(b"changed")
PY
  read -r w3 r3 <<<"$(run changed "$src" "$dest")"
  echo "| $n | $w1 | $r1 | $w2 | $r2 | $w3 | $r3 |"
  rm -rf "$src" "$dest"
done

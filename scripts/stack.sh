#!/usr/bin/env bash
# The local stack, brought up idempotently: PostgreSQL (installed with apt and started where
# missing), moto (S3, SNS, SQS, Secrets Manager) on loopback with the bucket, topic, a queue
# subscribed to the topic and the database secret, and `cargo lambda watch` serving the
# functions. Everything Python lives in .venv; state, logs and pids in .stack/.
#
#   scripts/stack.sh up     start what is not running (safe to repeat)
#   scripts/stack.sh down   stop moto and the Lambda emulator
#   scripts/stack.sh env    print the environment a shell needs to talk to the stack
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK="$ROOT/.stack"
VENV="$ROOT/.venv"
MOTO_PORT=${BACKSTOP_MOTO_PORT:-5055}
# A second, separate S3 server: media-sync's "other endpoint" (MinIO, another provider) in tests.
MOTO2_PORT=${BACKSTOP_MOTO2_PORT:-5056}
LAMBDA_PORT=${BACKSTOP_LAMBDA_PORT:-9100}
PG_HOST=${BACKSTOP_PG_HOST:-127.0.0.1}
PG_PORT=${BACKSTOP_PG_PORT:-5432}
PG_USER=${BACKSTOP_PG_USER:-postgres}
BUCKET=backstop-local
MEDIA_BUCKET=backstop-local-media
TOPIC=backstop-local
QUEUE=backstop-local-outcomes
SECRET=backstop/local/db
DEMO_DB=backstop_demo
ACCOUNT=123456789012
REGION=us-east-1

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

aws_env() {
  cat <<ENV
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
ENV
}

# What the functions see: the same variables Terraform sets on them.
lambda_env() {
  aws_env
  cat <<ENV
BACKSTOP_BUCKET=$BUCKET
BACKSTOP_PREFIX=backstop/
BACKSTOP_ENV=local
BACKSTOP_DB_SECRET_ID=$SECRET
BACKSTOP_SNS_TOPIC_ARN=arn:aws:sns:$REGION:$ACCOUNT:$TOPIC
BACKSTOP_MEDIA_SOURCE=s3://$MEDIA_BUCKET/uploads/
BACKSTOP_RETENTION='{"policy":{"keep_daily":7,"keep_weekly":4,"keep_monthly":6,"keep_tags":["manual","pre-migration"]}}'
RUST_LOG=info
ENV
}

port_open() { python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

wait_port() { # port, what, log
  for _ in $(seq 1 "${4:-120}"); do port_open "$1" && return 0; sleep 0.5; done
  echo "$2 did not start on 127.0.0.1:$1; its log:" >&2; tail -n 40 "$3" >&2 || true; exit 1
}

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"; }

ensure_postgres() {
  if ! command -v zstd >/dev/null; then
    say "installing zstd (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null
  fi
  if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_dump >/dev/null; then
    say "installing PostgreSQL (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
    local ver; ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    # A cluster we just installed: let local tests connect over loopback without a password.
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "/etc/postgresql/$ver/main/pg_hba.conf"
    # The package may have started the cluster already; make it read the new rules.
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload 2>/dev/null || true
  fi
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    say "starting PostgreSQL"
    local ver; ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
  fi
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || { echo "PostgreSQL is not answering on $PG_HOST:$PG_PORT" >&2; exit 1; }
}

ensure_venv() {
  if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/aws" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
    say "installing moto, awscli and cargo-lambda into .venv"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"
  fi
}

start_moto() { # name, port
  if ! port_open "$2"; then
    say "starting $1 on 127.0.0.1:$2"
    # Its request log (one line per request) is what tests count requests with.
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$2" >"$STACK/$1.log" 2>&1 </dev/null &
    echo $! >"$STACK/$1.pid"
    wait_port "$2" "$1" "$STACK/$1.log"
  fi
}

ensure_moto() {
  start_moto moto "$MOTO_PORT"
  start_moto moto2 "$MOTO2_PORT"
}

# Every call names the endpoint explicitly: never let a tool fall back to a real AWS host.
awsl() { env $(aws_env | xargs) "$VENV/bin/aws" --endpoint-url "http://127.0.0.1:$MOTO_PORT" --output text "$@"; }

ensure_resources() {
  say "creating bucket, topic, queue and secret (idempotent)"
  awsl s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 || awsl s3api create-bucket --bucket "$BUCKET" >/dev/null
  # The application's uploads, for media-sync: a few objects as a Django storage would write them.
  if ! awsl s3api head-bucket --bucket "$MEDIA_BUCKET" >/dev/null 2>&1; then
    awsl s3api create-bucket --bucket "$MEDIA_BUCKET" >/dev/null
    local f; f=$(mktemp)
    for name in "avatars/alice.png" "avatars/bob smith.png" "documents/2026/invoice #12.pdf"; do
      head -c $((2048 + RANDOM)) /dev/urandom >"$f"
      awsl s3api put-object --bucket "$MEDIA_BUCKET" --key "uploads/$name" --body "$f" >/dev/null
    done
    rm -f "$f"
  fi
  local topic_arn queue_url queue_arn
  topic_arn=$(awsl sns create-topic --name "$TOPIC" --query TopicArn)
  queue_url=$(awsl sqs create-queue --queue-name "$QUEUE" --query QueueUrl)
  queue_arn=$(awsl sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn)
  if ! awsl sns list-subscriptions-by-topic --topic-arn "$topic_arn" --query 'Subscriptions[].Endpoint' | grep -q "$queue_arn"; then
    awsl sns subscribe --topic-arn "$topic_arn" --protocol sqs --notification-endpoint "$queue_arn" >/dev/null
  fi
  local secret
  secret=$(printf '{"engine":"postgres","host":"%s","port":%s,"username":"%s","password":"","dbname":"%s"}' \
    "$PG_HOST" "$PG_PORT" "$PG_USER" "$DEMO_DB")
  awsl secretsmanager put-secret-value --secret-id "$SECRET" --secret-string "$secret" >/dev/null 2>&1 ||
    awsl secretsmanager create-secret --name "$SECRET" --secret-string "$secret" >/dev/null
}

ensure_demo_db() {
  if ! psql_admin -d postgres -tAc "select 1 from pg_database where datname = '$DEMO_DB'" | grep -q 1; then
    say "creating the demo database $DEMO_DB (a small Django-like shop)"
    psql_admin -d postgres -c "create database $DEMO_DB"
    psql_admin -d "$DEMO_DB" -f "$ROOT/scripts/demo-data.sql"
  fi
}

FUNCTIONS=(db-backup notification-cleanup media-sync retention-prune)

ensure_lambda() {
  say "building the functions"
  (cd "$ROOT" && cargo build -q "${FUNCTIONS[@]/#/-p}")
  local target; target=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  if port_open "$LAMBDA_PORT" && [ ! -f "$STACK/lambda.pid" ]; then
    echo "127.0.0.1:$LAMBDA_PORT is taken by a process this checkout did not start (another checkout's" \
      "emulator would serve its own binaries): stop it, or set BACKSTOP_LAMBDA_PORT" >&2
    exit 1
  fi
  # An emulator started before the last build serves old binaries: restart it.
  if port_open "$LAMBDA_PORT" && [ -f "$STACK/lambda.pid" ]; then
    for f in "${FUNCTIONS[@]}"; do
      if [ "$target/debug/$f" -nt "$STACK/lambda.pid" ]; then
        say "functions rebuilt: restarting the Lambda emulator"; stop_one lambda; sleep 1; break
      fi
    done
  fi
  if ! port_open "$LAMBDA_PORT"; then
    say "starting cargo lambda watch on 127.0.0.1:$LAMBDA_PORT"
    lambda_env >"$STACK/lambda.env"
    # Its own session, so `down` can stop it with the functions it started.
    (cd "$ROOT" && PATH="$VENV/bin:$PATH" exec setsid cargo lambda watch --ignore-changes -A 127.0.0.1 \
      -P "$LAMBDA_PORT" --env-file "$STACK/lambda.env" >"$STACK/lambda.log" 2>&1 </dev/null) &
    echo $! >"$STACK/lambda.pid"
    wait_port "$LAMBDA_PORT" "cargo lambda watch" "$STACK/lambda.log"
  fi
}

stop_one() {
  if [ -f "$STACK/$1.pid" ]; then
    local pid; pid=$(cat "$STACK/$1.pid")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$STACK/$1.pid"
  fi
}

stop() { stop_one lambda; stop_one moto; stop_one moto2; }

case "${1:-up}" in
  up)
    mkdir -p "$STACK"
    ensure_postgres
    ensure_venv
    ensure_moto
    ensure_resources
    ensure_demo_db
    ensure_lambda
    aws_env >"$STACK/aws.env"
    lambda_env >"$STACK/lambda.env"
    say "stack up: moto http://127.0.0.1:$MOTO_PORT, Lambda emulator http://127.0.0.1:$LAMBDA_PORT"
    ;;
  down) stop ;;
  env) aws_env | sed 's/^/export /'; echo "export BACKSTOP_LAMBDA_ENDPOINT=http://127.0.0.1:$LAMBDA_PORT" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac

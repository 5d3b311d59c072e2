#!/usr/bin/env bash
# Restore A/B: `pg_restore -j2` of a directory dump beside one or more `backstop` builds restoring
# the newest backup of DB under PREFIX in the local stack's bucket, interleaved, ROUNDS rounds (on
# a noisy machine, interleaving is what makes two builds comparable). Takes the backup set from an
# earlier `scripts/bench-restore.sh` (DB=backstop_rbench PREFIX=rbench/) or one you made.
#
#   cp target/release/backstop /tmp/backstop-a; …change…; cargo build --release
#   ROUNDS=2 scripts/bench-restore-ab.sh /tmp/backstop-a target/release/backstop
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set -a; . .stack/aws.env; set +a
PG="-h 127.0.0.1 -U postgres"; DB=${DB:-backstop_rbench}; PREFIX=${PREFIX:-rbench/}; JOBS=${JOBS:-2}
DIR=${TMPDIR:-/tmp}/backstop-ab-$DB
[ -d "$DIR" ] || pg_dump $PG -Fd -Z0 -j2 -f "$DIR" "$DB"
measure() { # name, command
  local name=$1; shift
  psql -X -q $PG -d postgres -c "drop database if exists backstop_ab" -c "create database backstop_ab" 2>/dev/null
  /usr/bin/time -f '%e %M' -o "$DIR.time" bash -c "$*" >/dev/null 2>"$DIR.err" || { cat "$DIR.err" >&2; exit 1; }
  read -r wall rss <"$DIR.time"
  printf '| %s | %s | %d |\n' "$name" "$wall" $((rss / 1024))
  psql -X -q $PG -d postgres -c "drop database if exists backstop_ab" 2>/dev/null
}
echo "| round: method | wall s | peak RSS MB |"
echo "| --- | ---: | ---: |"
for r in $(seq "${ROUNDS:-1}"); do
  measure "$r: pg_restore -j2" "pg_restore $PG -j2 -d backstop_ab $DIR"
  for b in "$@"; do
    measure "$r: $b --jobs $JOBS" "env BACKSTOP_BUCKET=backstop-local BACKSTOP_PREFIX=$PREFIX RUST_LOG=warn $b restore \
      --latest --database $DB --target-url postgres://postgres@127.0.0.1:5432/backstop_ab --jobs $JOBS"
  done
done

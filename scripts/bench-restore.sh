#!/usr/bin/env bash
# Restore benchmark: `backstop restore --jobs 1/2/4` of a native backup set from the loopback
# S3 endpoint, beside `pg_restore -j2/-j4` of a directory-format dump on local disk and
# `zstd -dc | psql` of a plain dump on local disk, each into a fresh database, in one run.
#
# The database (`backstop_rbench`, ~1.1 GB at the default scale): 500k users, 3M notifications,
# 3M events with jsonb and arrays; primary keys, secondary indexes and foreign keys, so post-data
# is a real share of the work. Prints a Markdown table: wall, peak RSS of the largest process,
# ratio to `pg_restore -j2`. Results go in BENCHMARKS.md.
#
#   scripts/bench-restore.sh            SCALE=0.2 scripts/bench-restore.sh   (quicker)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCALE=${SCALE:-1}
DB=backstop_rbench
"$ROOT/scripts/stack.sh" up >/dev/null
set -a; . "$ROOT/.stack/aws.env"; set +a
PG="-h 127.0.0.1 -U postgres"
BUCKET=backstop-local
WORK=$(mktemp -d /tmp/backstop-bench-restore.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
command -v zstd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null; }
cargo build -q --release --bin backstop
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/backstop

n() { python3 -c "print(max(1, int($1 * $SCALE)))"; }
if ! psql -X -q $PG -d "$DB" -tAc "select 1 from bench_done" >/dev/null 2>&1; then
  say "creating $DB (scale $SCALE)"
  psql -X -q $PG -d postgres -c "drop database if exists $DB" -c "create database $DB"
  psql -X -q -v ON_ERROR_STOP=1 $PG -d "$DB" <<SQL
create table users (id bigint primary key, email text not null unique, name text not null, created_at timestamptz not null);
create table notifications (id bigint primary key, user_id bigint not null references users, verb text not null,
  read boolean not null, data jsonb, created_at timestamptz not null);
create table events (id bigint primary key, user_id bigint references users, kind text not null, tags text[] not null,
  payload jsonb not null, at timestamptz not null);
insert into users select g, 'user' || g || '@example.com', 'User ' || md5(g::text), now() - g * interval '1 minute'
  from generate_series(1, $(n 500000)) g;
insert into notifications select g, 1 + g % $(n 500000), 'verb ' || (g % 20), g % 3 = 0,
  jsonb_build_object('order', g, 'note', md5(g::text)), now() - (g % 1000) * interval '1 hour'
  from generate_series(1, $(n 3000000)) g;
insert into events select g, 1 + g % $(n 500000), 'kind' || (g % 7), array['a' || (g % 5), 'b' || (g % 11)],
  jsonb_build_object('i', g, 'h', md5((g * 3)::text), 'v', g % 1000), now() - g * interval '1 second'
  from generate_series(1, $(n 3000000)) g;
create index on notifications (user_id, created_at);
create index on notifications (created_at) where not read;
create index on events (user_id);
create index on events (at);
create index on events using gin (tags);
create table bench_done (at timestamptz default now());
vacuum analyze;
SQL
fi
SIZE=$(psql -X $PG -d "$DB" -tAc "select pg_size_pretty(pg_database_size('$DB'))")

say "native backup set into s3://$BUCKET/rbench/ (jobs 2), pg_dump -Fd and plain zstd on local disk"
"$ROOT/.venv/bin/aws" --endpoint-url "$AWS_ENDPOINT_URL" s3 rm --quiet --recursive "s3://$BUCKET/rbench/" || true
env BACKSTOP_BUCKET=$BUCKET BACKSTOP_PREFIX=rbench/ DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" RUST_LOG=warn \
  "$BIN" db-backup --jobs 2 >/dev/null
pg_dump $PG -Fd -Z0 -j2 -f "$WORK/dir" "$DB"
pg_dump $PG "$DB" | zstd -q -3 >"$WORK/plain.sql.zst"

RESULTS=()
measure() { # name, target database, command... ; the target is dropped before and after
  local name=$1 target=$2; shift 2
  psql -X -q $PG -d postgres -c "drop database if exists $target" 2>/dev/null
  local t; t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" bash -c "$*" >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  read -r wall rss <"$t"
  RESULTS+=("$name;$wall;$rss")
  say "$name: ${wall}s, peak RSS ${rss} KB"
  psql -X -q $PG -d postgres -c "drop database if exists $target" 2>/dev/null
}
new() { echo "psql -X -q $PG -d postgres -c 'create database $1' &&"; }

for round in 1; do
  measure "pg_restore -j2 (directory dump, local disk)" r_pg2 "$(new r_pg2) pg_restore $PG -j2 -d r_pg2 $WORK/dir"
  measure "pg_restore -j4 (directory dump, local disk)" r_pg4 "$(new r_pg4) pg_restore $PG -j4 -d r_pg4 $WORK/dir"
  measure "zstd -dc | psql (plain dump, local disk)" r_psql \
    "$(new r_psql) zstd -dc $WORK/plain.sql.zst | psql -X -q -v ON_ERROR_STOP=1 $PG -d r_psql"
  for jobs in 1 2 4; do
    measure "backstop restore --jobs $jobs (S3, verified first)" "r_bk$jobs" \
      "env BACKSTOP_BUCKET=$BUCKET BACKSTOP_PREFIX=rbench/ RUST_LOG=warn '$BIN' restore --latest --database $DB \
         --target-url postgres://postgres@127.0.0.1:5432/r_bk$jobs --create --jobs $jobs"
  done
done

echo
echo "Restore of $DB ($SIZE; scale $SCALE); S3: moto on loopback; $(nproc) cores; $(date -u +%F)."
echo
echo "| method | wall s | peak RSS MB | wall ÷ pg_restore -j2 |"
echo "| --- | ---: | ---: | ---: |"
IFS=';' read -r _ base _ <<<"${RESULTS[0]}"
for r in "${RESULTS[@]}"; do
  IFS=';' read -r name wall rss <<<"$r"
  python3 -c 'import sys; n,w,r,b=sys.argv[1],float(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]); n=n.replace("|","\\|"); print(f"| {n} | {w:.1f} | {r/1024:.0f} | {w/b:.2f}× |")' "$name" "$wall" "$rss" "$base"
done

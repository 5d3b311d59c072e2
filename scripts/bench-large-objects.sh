#!/usr/bin/env bash
# Large objects: a database of N of them (COUNT, default 100000; 10 to 2,000 bytes each, plus
# one of 8 MB) backed up by the native engine into a local directory and restored, beside
# `pg_dump -Fc` / `pg_restore -j2` and `pg_dump | gzip` / `psql` of the same database, in one run.
# Wall and peak RSS of each; the native engine streams large objects through a cursor, so its
# memory should not grow with N (compare COUNT=10000 with COUNT=300000).
#
#   scripts/bench-large-objects.sh          COUNT=300000 scripts/bench-large-objects.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COUNT=${COUNT:-100000}
DB=backstop_lobench
PG="-h 127.0.0.1 -U postgres"
WORK=$(mktemp -d /tmp/backstop-bench-lo.XXXXXX)
trap 'rm -rf "$WORK"; psql -X -q $PG -d postgres -c "drop database if exists $DB" -c "drop database if exists r_lo" 2>/dev/null' EXIT
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
cargo build -q --release --bin backstop
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/backstop

say "creating $DB with $COUNT large objects"
psql -X -q $PG -d postgres -c "drop database if exists $DB" -c "create database $DB"
psql -X -q -v ON_ERROR_STOP=1 $PG -d "$DB" >/dev/null <<SQL
select count(lo_from_bytea(0, convert_to(repeat(md5(g::text), 1 + g % 62), 'UTF8'))) from generate_series(1, $COUNT) g;
select lo_from_bytea(0, convert_to(repeat(md5('big'), 250000), 'UTF8'));
SQL
FINGERPRINT="select count(*)::text || ' ' || md5(string_agg(md5(lo_get(oid)), ',' order by oid)) from pg_largeobject_metadata"
EXPECTED=$(psql -X $PG -d "$DB" -tAc "$FINGERPRINT")

RESULTS=()
measure() { # name, command...
  local name=$1; shift
  local t; t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" bash -c "$*" >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  read -r wall rss <"$t"
  RESULTS+=("$name;$wall;$rss")
  say "$name: ${wall}s, peak RSS ${rss} KB"
}
restored() { # the restored copy has every large object, byte for byte
  local got; got=$(psql -X $PG -d r_lo -tAc "$FINGERPRINT")
  [ "$got" = "$EXPECTED" ] || { echo "restore differs: $got vs $EXPECTED" >&2; exit 1; }
  psql -X -q $PG -d postgres -c "drop database r_lo"
}

measure "pg_dump -Fc" "pg_dump $PG -Fc -f $WORK/dump.fc $DB"
measure "pg_dump | gzip" "pg_dump $PG $DB | gzip -6 >$WORK/dump.sql.gz"
measure "backstop db-backup (native, local directory)" \
  "env -u AWS_ENDPOINT_URL DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB RUST_LOG=warn '$BIN' --to $WORK/bk db-backup"
measure "pg_restore -j2" "psql -X -q $PG -d postgres -c 'create database r_lo' && pg_restore $PG -j2 -d r_lo $WORK/dump.fc"
restored
measure "gunzip | psql" \
  "psql -X -q $PG -d postgres -c 'create database r_lo' && gzip -dc $WORK/dump.sql.gz | psql -X -q -v ON_ERROR_STOP=1 $PG -d r_lo"
restored
measure "backstop restore --jobs 2 (verified first)" \
  "env -u AWS_ENDPOINT_URL BACKSTOP_BUCKET=file://$WORK/bk RUST_LOG=warn '$BIN' restore --latest --database $DB \
     --target-url postgres://postgres@127.0.0.1:5432/r_lo --create --jobs 2"
restored

echo
echo "$COUNT large objects + one of 8 MB ($(psql -X $PG -d "$DB" -tAc "select pg_size_pretty(pg_database_size('$DB'))")); $(nproc) cores; $(date -u +%F)."
echo
echo "| method | wall s | peak RSS MB | wall ÷ the pg_dump/pg_restore row |"
echo "| --- | ---: | ---: | ---: |"
for i in "${!RESULTS[@]}"; do
  IFS=';' read -r name wall rss <<<"${RESULTS[$i]}"
  base_i=$(( i < 3 ? 0 : 3 ))
  IFS=';' read -r _ base _ <<<"${RESULTS[$base_i]}"
  python3 -c 'import sys; n,w,r,b=sys.argv[1],float(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]); n=n.replace("|","\\|"); print(f"| {n} | {w:.1f} | {r/1024:.0f} | {w/b:.2f}× |")' "$name" "$wall" "$rss" "$base"
done

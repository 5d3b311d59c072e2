#!/usr/bin/env bash
# Benchmark: db-backup (native engine with 1, 2 and 4 jobs; pg_dump engine) beside the pipelines
# it replaces, on one generated database of ≥ 500 MB, all uploading to the same loopback S3
# endpoint (moto), in one run; `pg_dump > file` is the uncompressed one-stream baseline. Prints a
# Markdown table (wall time, stored bytes, peak RSS of the largest process, ratios).
#
#   scripts/bench.sh            # BENCH_ROWS=4000000 (≈ 600 MB) by default
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/stack.sh" up >/dev/null
set -a; . "$ROOT/.stack/aws.env"; set +a
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
DB=backstop_bench
ROWS=${BENCH_ROWS:-4000000}
PG="-h 127.0.0.1 -U postgres"
BUCKET=backstop-local
MOTO=$AWS_ENDPOINT_URL
aws() { "$ROOT/.venv/bin/aws" --endpoint-url "$MOTO" "$@"; }

if ! psql -X $PG -d postgres -tAc "select 1 from pg_database where datname = '$DB'" | grep -q 1; then
  echo "generating $DB with $ROWS orders (takes a minute or two)" >&2
  psql -X -q $PG -d postgres -c "create database $DB"
  psql -X -q -v ON_ERROR_STOP=1 $PG -d "$DB" <<SQL
create table customers (id int primary key, email text not null, name text not null, created timestamptz not null);
insert into customers select g, 'user' || g || '@example.com', 'Customer ' || md5(g::text), now() - g * interval '1 minute'
  from generate_series(1, $ROWS / 10) g;
create table orders (
  id bigint primary key, customer_id int not null references customers (id), status text not null,
  total numeric(12, 2) not null, note text, payload jsonb, created timestamptz not null);
insert into orders
  select g, 1 + g % ($ROWS / 10), (array['new', 'paid', 'shipped', 'refunded'])[1 + g % 4], (g % 100000) / 100.0,
         case when g % 3 = 0 then 'note ' || md5(g::text) end,
         jsonb_build_object('sku', 'SKU-' || (g % 5000), 'qty', 1 + g % 7, 'ref', md5((g * 31)::text)),
         now() - g * interval '1 second'
  from generate_series(1, $ROWS) g;
create index orders_customer on orders (customer_id);
analyze;
SQL
fi
SIZE=$(psql -X $PG -d "$DB" -tAc "select pg_database_size('$DB')")
echo "database $DB: $((SIZE / 1000000)) MB" >&2
cargo build -q --release --bin backstop
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/backstop

RESULTS=()
measure() { # name, key, command...
  local name=$1 key=$2; shift 2
  local t; t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" bash -c "$*" >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  local wall rss bytes
  read -r wall rss <"$t"
  bytes=$(aws s3api head-object --bucket "$BUCKET" --key "$key" --query ContentLength --output text)
  RESULTS+=("$name;$wall;$bytes;$rss")
  echo "$name: ${wall}s, $bytes bytes, peak RSS ${rss} KB" >&2
}

FILE_OUT=$(mktemp)
t=$(mktemp)
/usr/bin/time -f '%e %M' -o "$t" bash -c "pg_dump $PG -d $DB > $FILE_OUT"
read -r wall rss <"$t"
RESULTS+=("pg_dump > file (no compression, local disk);$wall;$(stat -c %s "$FILE_OUT");$rss")
echo "pg_dump > file: ${wall}s" >&2
rm -f "$FILE_OUT"
measure 'pg_dump | gzip -6 | aws s3 cp -' bench/gzip6.sql.gz \
  "pg_dump $PG -d $DB | gzip -6 | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/gzip6.sql.gz"
measure 'pg_dump | zstd -3 -T2 | aws s3 cp -' bench/zstd3.sql.zst \
  "pg_dump $PG -d $DB | zstd -3 -T2 -q | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/zstd3.sql.zst"
measure 'pg_dump -Fc -Z1 | aws s3 cp -' bench/custom-z1.dump \
  "pg_dump $PG -d $DB -Fc -Z1 | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/custom-z1.dump"

backstop() { # name, payload
  local out t; out=$(mktemp); t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" env BACKSTOP_BUCKET=$BUCKET BACKSTOP_PREFIX=bench/ BACKSTOP_ENV=bench \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" RUST_LOG=warn "$BIN" db-backup --payload "$2" >"$out"
  read -r wall rss <"$t"
  bytes=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"]=="succeeded", r; print(r["outputs"]["databases"][0]["bytes"])' "$out")
  RESULTS+=("$1;$wall;$bytes;$rss")
  echo "$1: ${wall}s, $bytes bytes, peak RSS ${rss} KB" >&2
}
backstop 'backstop db-backup, pg_dump engine (zstd 3)' '{"engine": "pg_dump"}'
for jobs in 1 2 4; do
  backstop "backstop db-backup, native, jobs $jobs (zstd 3)" "{\"jobs\": $jobs}"
done

echo
echo "Database: $DB, $((SIZE / 1000000)) MB on disk ($ROWS orders); S3: moto on loopback; $(nproc) cores."
echo
echo "| method | wall s | stored MB | peak RSS MB | wall vs pg_dump > file | wall vs gzip -6 | size vs gzip -6 | size vs zstd -3 |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
IFS=';' read -r _ file_wall _ _ <<<"${RESULTS[0]}"
IFS=';' read -r _ base_wall base_bytes _ <<<"${RESULTS[1]}"
IFS=';' read -r _ _ zstd_bytes _ <<<"${RESULTS[2]}"
for r in "${RESULTS[@]}"; do
  IFS=';' read -r name wall bytes rss <<<"$r"
  python3 - "$name" "$wall" "$bytes" "$rss" "$file_wall" "$base_wall" "$base_bytes" "$zstd_bytes" <<'PY'
import sys
name, wall, b, rss = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fw, bw, bb, zb = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
name = name.replace("|", "\\|")
print(f"| {name} | {wall:.1f} | {b/1e6:.1f} | {rss/1024:.0f} | {wall/fw:.2f}× | {wall/bw:.2f}× | {b/bb:.2f}× | {b/zb:.2f}× |")
PY
done

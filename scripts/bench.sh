#!/usr/bin/env bash
# Benchmark: db-backup (native engine with 1, 2 and 4 jobs; pg_dump engine) beside the pipelines
# it replaces, on one generated database of ≥ 500 MB, all uploading to the same loopback S3
# endpoint (moto), in one run; `pg_dump > file` is the uncompressed one-stream baseline. Prints a
# Markdown table (wall time, stored bytes, peak RSS of the largest process, ratios).
#
# Shared 2-core machines drift by ±30% within minutes, so the methods run in interleaved rounds
# (every method once per round, the previous round's objects deleted first so moto stays lean);
# the table gives each method's median wall time and the median of its per-round ratios.
#
#   scripts/bench.sh            # BENCH_ROWS=4000000 (≈ 600 MB), BENCH_ROUNDS=3
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

ROUNDS=${BENCH_ROUNDS:-3}
RAW=$(mktemp)   # round;method;wall;bytes;rss;cpu per line
# CPU seconds the whole machine was busy (every process: PostgreSQL, moto, the tool), from
# /proc/stat; a method's CPU is the difference around it.
busy() { awk '/^cpu /{printf "%d", $2+$3+$4+$7+$8}' /proc/stat; }
CPU0=0 CPU=0
stop_cpu() { CPU=$(python3 -c "print(($(busy) - $CPU0) / $(getconf CLK_TCK))"); }
record() { # round, name, wall, bytes, rss (and $CPU, the method's machine CPU)
  echo "$1;$2;$3;$4;$5;$CPU" >>"$RAW"
  echo "round $1: $2: ${3}s, $4 bytes, peak RSS $5 KB, machine CPU ${CPU}s" >&2
}
timed() { # output file for "wall rss", command...
  local t=$1; shift
  CPU0=$(busy)
  /usr/bin/time -f '%e %M' -o "$t" bash -c "$*" >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  stop_cpu
}
pipeline() { # round, name, key, command...
  local round=$1 name=$2 key=$3 t; shift 3
  t=$(mktemp)
  timed "$t" "$*"
  read -r wall rss <"$t"
  record "$round" "$name" "$wall" "$(aws s3api head-object --bucket "$BUCKET" --key "$key" --query ContentLength --output text)" "$rss"
}
backstop() { # round, name, payload
  local out t; out=$(mktemp); t=$(mktemp)
  CPU0=$(busy)
  /usr/bin/time -f '%e %M' -o "$t" env BACKSTOP_BUCKET=$BUCKET BACKSTOP_PREFIX=bench/ BACKSTOP_ENV=bench \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" RUST_LOG=warn "$BIN" db-backup --payload "$3" >"$out"
  stop_cpu
  read -r wall rss <"$t"
  record "$1" "$2" "$wall" "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"]=="succeeded", r; print(r["outputs"]["databases"][0]["bytes"])' "$out")" "$rss"
}

FILE_OUT=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  aws s3 rm --quiet --recursive "s3://$BUCKET/bench/" >/dev/null
  t=$(mktemp)
  timed "$t" "pg_dump $PG -d $DB > $FILE_OUT"
  read -r wall rss <"$t"
  record "$round" 'pg_dump > file (no compression, local disk)' "$wall" "$(stat -c %s "$FILE_OUT")" "$rss"
  rm -f "$FILE_OUT"
  pipeline "$round" 'pg_dump | gzip -6 | aws s3 cp -' bench/gzip6.sql.gz \
    "pg_dump $PG -d $DB | gzip -6 | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/gzip6.sql.gz"
  pipeline "$round" 'pg_dump | zstd -3 -T2 | aws s3 cp -' bench/zstd3.sql.zst \
    "pg_dump $PG -d $DB | zstd -3 -T2 -q | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/zstd3.sql.zst"
  pipeline "$round" 'pg_dump -Fc -Z1 | aws s3 cp -' bench/custom-z1.dump \
    "pg_dump $PG -d $DB -Fc -Z1 | '$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp - s3://$BUCKET/bench/custom-z1.dump"
  backstop "$round" 'backstop db-backup, pg_dump engine (zstd default)' '{"engine": "pg_dump"}'
  backstop "$round" 'backstop db-backup, native, jobs 2 (zstd 3 asked for)' '{"jobs": 2, "compression_level": 3}'
  for jobs in 1 2 4; do
    backstop "$round" "backstop db-backup, native, jobs $jobs (zstd default)" "{\"jobs\": $jobs}"
  done
done

echo
echo "Database: $DB, $((SIZE / 1000000)) MB on disk ($ROWS orders); S3: moto on loopback; $(nproc) cores; $ROUNDS rounds."
echo
python3 - "$RAW" <<'PY'
import statistics as st, sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1])]
names = list(dict.fromkeys(r[1] for r in rows))
by = {(int(r[0]), r[1]): (float(r[2]), int(r[3]), int(r[4]), float(r[5])) for r in rows}
rounds = sorted({int(r[0]) for r in rows})
file_, gzip, zstd = names[0], names[1], names[2]
def med_ratio(name, base, i):
    return st.median(by[(r, name)][i] / by[(r, base)][i] for r in rounds)
print("| method | wall s (median) | wall s (min–max) | machine CPU s | stored MB | peak RSS MB | wall vs pg_dump > file | wall vs gzip -6 | size vs gzip -6 | size vs zstd -3 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in names:
    walls = [by[(r, n)][0] for r in rounds]
    b = by[(rounds[-1], n)][1]
    rss = max(by[(r, n)][2] for r in rounds)
    label = n.replace("|", "\\|")
    cpu = st.median(by[(r, n)][3] for r in rounds)
    print(f"| {label} | {st.median(walls):.1f} | {min(walls):.1f}–{max(walls):.1f} | {cpu:.1f} | {b/1e6:.1f} | {rss/1024:.0f} "
          f"| {med_ratio(n, file_, 0):.2f}× | {med_ratio(n, gzip, 0):.2f}× | {med_ratio(n, gzip, 1):.2f}× | {med_ratio(n, zstd, 1):.2f}× |")
print()
print("Per round, wall vs `pg_dump > file` of the same round:")
print()
print("| round | pg_dump > file s | " + " | ".join(n.replace("backstop db-backup, ", "").replace(" (zstd default)", "").replace("|", "\\|") for n in names[1:]) + " |")
print("| ---: | ---: | " + " | ".join("---:" for _ in names[1:]) + " |")
for r in rounds:
    print(f"| {r} | {by[(r, file_)][0]:.1f} | " + " | ".join(f"{by[(r, n)][0] / by[(r, file_)][0]:.2f}×" for n in names[1:]) + " |")
PY
rm -f "$RAW"

#!/usr/bin/env bash
# Benchmark: `backstop restore` (a native backup set, --jobs 1 and 2) beside the by-hand restore
# it replaces (`aws s3 cp … - | zstd -dc | psql`), both from the same loopback S3 endpoint into a
# fresh database, in one run. Uses the backups scripts/bench.sh stored (run it first). Prints a
# Markdown table (wall time, peak RSS of the largest process, ratio to the psql pipeline).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/stack.sh" up >/dev/null
set -a; . "$ROOT/.stack/aws.env"; set +a
DB=backstop_bench
BUCKET=backstop-local
MOTO=$AWS_ENDPOINT_URL
PG="-h 127.0.0.1 -U postgres"
cargo build -q --release --bin backstop
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/backstop
"$ROOT/.venv/bin/aws" --endpoint-url "$MOTO" s3api head-object --bucket $BUCKET --key bench/zstd3.sql.zst >/dev/null \
  || { echo "no bench/zstd3.sql.zst: run scripts/bench.sh first" >&2; exit 1; }

fresh() { psql -X -q $PG -d postgres -c "drop database if exists $1" -c "create database $1" 2>/dev/null; }
RESULTS=()
measure() { # name, command...
  local name=$1; shift
  local t; t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" bash -c "$*" >/dev/null 2>"$t.err" || { cat "$t.err" >&2; exit 1; }
  read -r wall rss <"$t"
  RESULTS+=("$name;$wall;$rss")
  echo "$name: ${wall}s, peak RSS ${rss} KB" >&2
}

fresh bench_restore_psql
measure 'aws s3 cp - | zstd -dc | psql (pg_dump | zstd -3 dump)' \
  "'$ROOT/.venv/bin/aws' --endpoint-url $MOTO s3 cp s3://$BUCKET/bench/zstd3.sql.zst - | zstd -dc | psql -X -q -v ON_ERROR_STOP=1 $PG -d bench_restore_psql"
for jobs in 1 2; do
  psql -X -q $PG -d postgres -c "drop database if exists bench_restore_$jobs" 2>/dev/null
  measure "backstop restore --jobs $jobs (native set, verified first)" \
    "env BACKSTOP_BUCKET=$BUCKET BACKSTOP_PREFIX=bench/ RUST_LOG=warn '$BIN' restore --latest --database $DB \
       --target-url postgres://postgres@127.0.0.1:5432/bench_restore_$jobs --create --jobs $jobs"
done
for d in bench_restore_psql bench_restore_1 bench_restore_2; do
  psql -X -q $PG -d postgres -c "drop database if exists $d" 2>/dev/null
done

echo
echo "Restore of backstop_bench ($(psql -X $PG -d $DB -tAc "select pg_size_pretty(pg_database_size('$DB'))")); S3: moto on loopback; $(nproc) cores."
echo
echo "| method | wall s | peak RSS MB | wall vs psql pipeline |"
echo "| --- | ---: | ---: | ---: |"
IFS=';' read -r _ base _ <<<"${RESULTS[0]}"
for r in "${RESULTS[@]}"; do
  IFS=';' read -r name wall rss <<<"$r"
  python3 -c 'import sys; n,w,r,b=sys.argv[1],float(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]); n=n.replace("|","\\|"); print(f"| {n} | {w:.1f} | {r/1024:.0f} | {w/b:.2f}× |")' "$name" "$wall" "$rss" "$base"
done

#!/usr/bin/env bash
# The fidelity proof (issue 15): PostgreSQL's own regression database — the standard test of a
# dump tool, as pg_upgrade's test uses it — backed up with Backstop's native engine and restored
# with `backstop restore`, beside pg_dump -Fc | pg_restore of the same database in the same run.
# Each restore is compared with the source: `pg_dump --schema-only` lines (normalized) and every
# table's rows, sequence values and large objects. Prints a Markdown table (README's fidelity
# section). The target is "no difference pg_dump does not also have".
#
# The regression SQL comes from Debian's source package of the server's major version
# (`apt-get source --download-only`, a deb-src entry made from the system's own deb entries), is
# used in place under $CACHE and is never copied into the repository. Scripts needing the
# regression suite's C library fail where they call it, as they would without it; the rest runs
# in `parallel_schedule` order, one file after another.
#
#   scripts/fidelity.sh          KEEP=1 scripts/fidelity.sh   (keep the databases)
#   CHECK=1 PROFILE=debug scripts/fidelity.sh  (exit 1 on any difference pg_dump does not also have, with
#                                              the debug build: the test suite runs this)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${CACHE:-$ROOT/.cache/pg-regress}
PG="-h 127.0.0.1 -U postgres"
URL=postgres://postgres@127.0.0.1:5432
DB=backstop_regression
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
WORK=$(mktemp -d /tmp/backstop-fidelity.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

MAJOR=$(psql -X $PG -d postgres -tAc "select current_setting('server_version_num')::int / 10000")
REGRESS=$(ls -d "$CACHE"/postgresql-"$MAJOR".*/src/test/regress 2>/dev/null | head -1 || true)
if [ -z "$REGRESS" ]; then
  say "fetching PostgreSQL $MAJOR's regression suite (Debian source package)"
  if ! apt-cache showsrc "postgresql-$MAJOR" 2>/dev/null | grep '^Version:' >/dev/null; then
    # A deb-src entry beside each deb entry the system already has.
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] && grep -q '^Types: deb$' "$f" && sed 's/^Types: deb$/Types: deb-src/' "$f" \
        > "/etc/apt/sources.list.d/backstop-src-$(basename "$f")"
    done
    [ -e /etc/apt/sources.list ] && grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
      > /etc/apt/sources.list.d/backstop-src.list || true
    apt-get update -qq >/dev/null 2>&1 || true
  fi
  mkdir -p "$CACHE" && cd "$CACHE"
  # The newest version whose source the archives still serve (security updates' may be gone).
  for v in $(apt-cache showsrc "postgresql-$MAJOR" | awk '/^Version:/ {print $2}' | sort -rV); do
    apt-get source --download-only -qq "postgresql-$MAJOR=$v" >/dev/null 2>&1 && break
  done
  tarball=$(ls postgresql-"$MAJOR"_*.orig.tar.* 2>/dev/null | head -1 || true)
  if [ -z "$tarball" ]; then
    echo "SKIPPED: the fidelity proof: no source package of postgresql-$MAJOR could be fetched (apt-get source)" >&2
    exit 0
  fi
  tar xf "$tarball" --wildcards '*/src/test/regress/*'
  cd "$ROOT"
  REGRESS=$(ls -d "$CACHE"/postgresql-"$MAJOR".*/src/test/regress | head -1)
fi
chmod -R a+rX "$CACHE"  # the server reads the data files (COPY … FROM)

if ! psql -X -q $PG -d "$DB" -tAc "select 1 from backstop_regression_done" >/dev/null 2>&1; then
  say "building $DB from $REGRESS (parallel_schedule, one file after another)"
  psql -X -q $PG -d postgres -c "drop database if exists $DB with (force)" -c "create database $DB"
  mkdir -p "$WORK/build/results"
  start=$(date +%s)
  for t in $(awk '/^test:/ {for (i = 2; i <= NF; i++) print $i}' "$REGRESS/parallel_schedule"); do
    [ -f "$REGRESS/sql/$t.sql" ] || continue
    PG_ABS_SRCDIR=$REGRESS PG_ABS_BUILDDIR=$WORK/build PG_LIBDIR=$WORK/no-libdir PG_DLSUFFIX=.so \
      PGOPTIONS="-c allow_in_place_tablespaces=on" \
      timeout 300 psql -X -q $PG -d "$DB" -v ON_ERROR_STOP=0 -f "$REGRESS/sql/$t.sql" >/dev/null 2>&1 || true
  done
  psql -X -q $PG -d "$DB" -c "create table backstop_regression_done (at timestamptz default now())"
  say "built in $(( $(date +%s) - start )) s"
fi

# The test suite checks with the debug build it already has (PROFILE=debug); timings want release.
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then cargo build -q --release --bin backstop; else cargo build -q --bin backstop; fi
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$PROFILE/backstop

wall() { local s; s=$(date +%s.%N); "$@"; python3 -c "print(f'{$(date +%s.%N) - $s:.1f}')" >&3; }
exec 3>"$WORK/walls"

say "native backup (jobs 2) into $WORK/backups, backstop restore (jobs 2)"
psql -X -q $PG -d postgres -c "drop database if exists ${DB}_native with (force)" -c "drop database if exists ${DB}_pgdump with (force)"
wall env DATABASE_URL="$URL/$DB" RUST_LOG=warn "$BIN" --to "$WORK/backups" db-backup --jobs 2 --no-fallback >"$WORK/backup.json"
wall env DATABASE_URL="$URL/$DB" RUST_LOG=warn "$BIN" --to "$WORK/backups" restore --latest --database "$DB" \
  --target-url "$URL/${DB}_native" --create --jobs 2 >"$WORK/restore.log" 2>&1 \
  || { tail -5 "$WORK/restore.log" >&2; echo "native restore failed" >&2; }

say "pg_dump -Fc, pg_restore (jobs 2)"
wall pg_dump $PG -Fc -f "$WORK/regression.dump" "$DB"
psql -X -q $PG -d postgres -c "create database ${DB}_pgdump"
wall sh -c "pg_restore $PG -j 2 -d ${DB}_pgdump '$WORK/regression.dump' 2>'$WORK/pg_restore.log' || true"
exec 3>&-
mapfile -t W <"$WORK/walls"

say "comparing each restore with the source"
status=0
python3 scripts/fidelity_compare.py "$URL/$DB" "$URL/${DB}_native" >"$WORK/native.json"
python3 scripts/fidelity_compare.py "$URL/$DB" "$URL/${DB}_pgdump" >"$WORK/pgdump.json"
python3 - "$WORK" "${W[@]}" <<'PY' || status=$?
import json, os, sys
work, walls = sys.argv[1], sys.argv[2:]
n, p = (json.load(open(f"{work}/{k}.json")) for k in ("native", "pgdump"))
print("| | schema lines equal | tables with equal rows | sequences, large objects | backup | restore |")
print("| --- | --- | --- | --- | --- | --- |")
for name, r, b, s in (("Backstop native → backstop restore -j2", n, walls[0], walls[1]),
                      ("pg_dump -Fc → pg_restore -j2", p, walls[2], walls[3])):
    print(f"| {name} | {r['schema_lines_equal']} / {r['schema_lines']} | {r['tables_equal']} / {r['tables']} "
          f"| {'equal' if r['sequences_and_large_objects_equal'] else 'differ'} | {b} s | {s} s |")
only_native = sorted(set(n["missing"] + n["extra"]) - set(p["missing"] + p["extra"]))
print(f"\nDifferences pg_dump does not also have: {len(only_native)} schema lines, "
      f"{len(set(n['tables_differing']) - set(p['tables_differing']))} tables")
for l in only_native[:40]:
    print(f"    {'-' if l in n['missing'] else '+'} {l}")
only_tables = sorted(set(n["tables_differing"]) - set(p["tables_differing"]))
for t in only_tables[:20]:
    print(f"    rows differ: {t}")
if os.environ.get("CHECK") and (only_native or only_tables or not n["sequences_and_large_objects_equal"]):
    sys.exit(1)
PY
if [ -z "${KEEP:-}" ]; then
  psql -X -q $PG -d postgres -c "drop database if exists ${DB}_native with (force)" -c "drop database if exists ${DB}_pgdump with (force)"
fi
exit "$status"

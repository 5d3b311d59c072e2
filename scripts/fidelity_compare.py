"""Compares two databases the way the fidelity proof reports them: the schema (pg_dump
--schema-only, without tablespaces and comment/SET lines) as a multiset of lines, and the data
(pg_dump --data-only) per table as a multiset of rows, plus sequence values and large objects.

    python3 scripts/fidelity_compare.py SOURCE_URL TARGET_URL   -> one JSON line
"""

import collections
import json
import subprocess
import sys


def pg_dump(url, *args):
    out = subprocess.run(["pg_dump", "--no-tablespaces", *args, "-d", url], check=True, capture_output=True)
    return out.stdout.decode("utf-8", "replace").splitlines()


def schema_lines(url):
    skip = ("--", "SET ", "\\restrict", "\\unrestrict", "SELECT pg_catalog.set_config")
    return [l for l in pg_dump(url, "--schema-only") if l.strip() and not l.startswith(skip)]


def data(url):
    """{table: Counter(rows)}, plus the sequences' values and the large objects' statements."""
    tables, current, other = {}, None, []
    for line in pg_dump(url, "--data-only"):
        if current is not None:
            if line == "\\.":
                current = None
            else:
                tables[current][line] += 1
        elif line.startswith("COPY "):
            current = line.split(" (")[0][5:]
            tables[current] = collections.Counter()
        elif line.startswith(("SELECT pg_catalog.setval", "SELECT pg_catalog.lo_", "SELECT pg_catalog.lowrite")):
            other.append(line)
    return tables, sorted(other)


def main():
    source, target = sys.argv[1], sys.argv[2]
    a, b = collections.Counter(schema_lines(source)), collections.Counter(schema_lines(target))
    missing, extra = a - b, b - a
    ta, oa = data(source)
    tb, ob = data(target)
    equal = sum(1 for t, rows in ta.items() if tb.get(t) == rows)
    print(json.dumps({
        "schema_lines": sum(a.values()),
        "schema_lines_equal": sum((a & b).values()),
        "missing": sorted(missing.elements())[:40],
        "extra": sorted(extra.elements())[:40],
        "tables": len(ta),
        "tables_equal": equal,
        "tables_differing": sorted(t for t, rows in ta.items() if tb.get(t) != rows)[:40],
        "rows": sum(sum(c.values()) for c in ta.values()),
        "sequences_and_large_objects_equal": oa == ob,
    }))


if __name__ == "__main__":
    main()

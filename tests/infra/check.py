"""Checks infra/ against the code: the Terraform module deploys every function, sets what each
one reads, and lets each role do exactly what its code calls.

The code's side comes from `backstop deploy-spec` (backstop_core::access and config::VARIABLES,
which the Rust tests keep true to the adapters and the environment reads). The module's side
is its HCL, parsed (python-hcl2): no provider can be downloaded here, so nothing is planned.

    .venv/bin/python tests/infra/check.py path/to/backstop   (scripts/test.sh runs it)
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "modules" / "backstop"
# Statements the platform needs, not the code: the function's logs, the KMS keys.
PLATFORM_SIDS = {"Logs", "Kms"}

failures: list[str] = []
passed = 0


def check(ok: bool, what: str) -> None:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)


def clean(x):
    """python-hcl2 keeps string quotes and block markers; take them off."""
    if isinstance(x, dict):
        return {clean(k): clean(v) for k, v in x.items() if k != "__is_block__"}
    if isinstance(x, list):
        return [clean(v) for v in x]
    if isinstance(x, str) and len(x) >= 2 and x[0] == x[-1] == '"':
        return x[1:-1]
    return x


def load_module() -> dict:
    merged: dict = {}
    for tf in sorted(MODULE.glob("*.tf")):
        with tf.open() as f:
            for kind, blocks in clean(hcl2.load(f)).items():
                merged.setdefault(kind, []).extend(blocks if isinstance(blocks, list) else [blocks])
    return merged


def blocks(module: dict, kind: str, type_: str) -> dict:
    """{name: body} of `kind "type_" "name"` blocks (resource, data)."""
    out = {}
    for block in module.get(kind, []):
        for name, body in block.get(type_, {}).items():
            out[name] = body
    return out


def locals_of(module: dict) -> dict:
    out = {}
    for block in module.get("locals", []):
        out.update(block)
    return out


def env_names(value, local: dict) -> set[str]:
    """Variable names a module environment map sets: a literal map, or an expression (merge())
    of literal maps and other locals."""
    if isinstance(value, dict):
        return set(value)
    text = str(value)
    names = set(re.findall(r"['\"]?\b([A-Z][A-Z0-9_]{2,})\b['\"]?\s*[:=]", text))
    for ref in re.findall(r"\blocal\.(\w+)", text):
        names |= env_names(local[ref], local)
    return names


def statements(doc: dict, docs: dict) -> list[dict]:
    """A policy document's statements: its own, those of `dynamic "statement"` blocks, and
    those of the documents it includes (`source_policy_documents`)."""
    out = list(doc.get("statement", []))
    for dyn in doc.get("dynamic", []):
        out.extend(flat(dyn.get("statement", {}).get("content", [])))
    for source in flat(doc.get("source_policy_documents", [])):
        for name in re.findall(r"data\.aws_iam_policy_document\.(\w+)\.json", str(source)):
            out.extend(statements(docs[name], docs))
    return out


def flat(x) -> list:
    if isinstance(x, list):
        return [y for v in x for y in flat(v)]
    return [x]


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit("usage: check.py path/to/backstop (scripts/infra-check.sh builds and passes it)")
    backstop = sys.argv[1]
    spec = json.loads(subprocess.run([backstop, "deploy-spec"], check=True, capture_output=True, text=True).stdout)
    module = load_module()
    local = locals_of(module)
    variables = {name: body for block in module["variable"] for name, body in block.items()}

    crates = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists() and p.name != "cli")
    functions = sorted(spec["functions"])
    check(crates == functions, f"function crates {crates} and deploy-spec's functions {functions} differ")
    check(sorted(variables["functions"]["default"]) == crates, "var.functions' default is not every function")

    # Every function has a function, a role, a policy, async config, a schedule and an alarm.
    for_each_over = {
        ("aws_lambda_function", "function"): "local.lambda_functions",
        ("aws_iam_role", "function"): "var.functions",
        ("aws_iam_role_policy", "function"): "var.functions",
        ("aws_lambda_function_event_invoke_config", "function"): "local.lambda_functions",
        ("aws_cloudwatch_log_group", "function"): "var.functions",
        ("aws_cloudwatch_metric_alarm", "errors"): "local.lambda_functions",
        ("aws_cloudwatch_metric_alarm", "task_failures"): "local.fargate_functions",
        ("aws_ecs_task_definition", "runner"): "local.fargate_functions",
    }
    for (type_, name), over in for_each_over.items():
        body = blocks(module, "resource", type_).get(name)
        check(body is not None and over in str(body.get("for_each")), f"{type_}.{name} is not one per function ({over})")
    scheduled = {s["function"] for s in variables["schedules"]["default"].values()}
    check(sorted(scheduled) == crates, f"default schedules cover {sorted(scheduled)}, not every function")
    for key in ("function_environment", "policies"):
        check(sorted(local[key]) == crates, f"local.{key} has {sorted(local[key])}, not every function")

    # Environment: what the code must be given is set; nothing the code does not read is.
    table = {v["name"]: v for v in spec["variables"]}
    common = env_names(local["common_environment"], local)
    for f in crates:
        given = common | env_names(local["function_environment"][f], local)
        for name in given:
            check(name in table, f"the module sets {name} on {f}; the code reads no such variable")
        for v in spec["variables"]:
            if v["set_by_module"] and (not v["functions"] or f in v["functions"]):
                check(v["name"] in given, f"{f} reads {v['name']}, which the module must set but does not")
    for v in spec["variables"]:
        check(bool(v["doc"]), f"{v['name']} has no description")

    # Roles: per function, (action, resource) pairs equal the code's grants.
    docs = blocks(module, "data", "aws_iam_policy_document")
    for f, grants in spec["functions"].items():
        doc = docs.get(f.replace("-", "_"))
        check(doc is not None, f"no aws_iam_policy_document for {f}")
        if doc is None:
            continue
        want, prefixes_want = set(), set()
        for g in grants:
            target = g["target"]
            name = {"bucket": "bucket", "objects": f"objects:{target.get('scope')}"}.get(target["kind"], target["kind"])
            for action in g["actions"]:
                want.add((action, name))
            if target["kind"] == "bucket":
                prefixes_want = {f"${{var.prefix}}{s}*" for s in target["scope"]}
        got, prefixes_got = set(), set()
        for st in statements(doc, docs):
            if st.get("sid") in PLATFORM_SIDS:
                continue
            resources = flat(st.get("resources", []))
            names = [m for r in resources for m in re.findall(r'local\.resources\["([^"]+)"\]', str(r))]
            check(len(names) == len(resources), f"{f}: statement {st.get('sid')} names a resource outside local.resources: {resources}")
            for action in flat(st.get("actions", [])):
                for n in names:
                    got.add((action, n))
            for cond in st.get("condition", []):
                if cond.get("variable") == "s3:prefix":
                    prefixes_got |= set(flat(cond.get("values", [])))
            if "s3:ListBucket" in flat(st.get("actions", [])) and names == ["bucket"]:
                check(any(c.get("variable") == "s3:prefix" for c in st.get("condition", [])),
                      f"{f}: listing the backup bucket is not limited by s3:prefix")
        check(got == want, f"{f}: role allows {sorted(got - want)} beyond its code, lacks {sorted(want - got)}")
        check(prefixes_got == prefixes_want, f"{f}: listing prefixes {sorted(prefixes_got)}, code lists {sorted(prefixes_want)}")
        for _, n in want:
            check(n in local["resources"], f"{f}: resource {n} is not in local.resources")

    # Platform statements stay platform: logs and KMS only.
    platform = docs.get("platform", {})
    for st in statements(platform, docs):
        check(st.get("sid") in PLATFORM_SIDS, f"platform statement {st.get('sid')} is not logs or KMS")
        check(all(a.split(":")[0] in ("logs", "kms") for a in flat(st.get("actions", []))), f"platform statement {st.get('sid')} allows more")

    for failure in failures:
        print(f"infra: FAILED: {failure}")
    print(f"infra: {passed} checks passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

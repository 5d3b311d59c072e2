#!/usr/bin/env bash
# The main job on a fresh machine: bring up the local stack, then back up the demo PostgreSQL
# database into the local S3 endpoint by invoking the real db-backup Lambda function through
# the Lambda emulator, exactly as `aws lambda invoke` would on AWS. Then show what landed:
# the objects, the outcome message an SQS subscriber of the topic received, and a restore.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/stack.sh" up
set -a; . "$ROOT/.stack/aws.env"; set +a
MOTO="http://127.0.0.1:${BACKSTOP_MOTO_PORT:-5055}"
LAMBDA="http://127.0.0.1:${BACKSTOP_LAMBDA_PORT:-9100}"
aws() { "$ROOT/.venv/bin/aws" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "aws lambda invoke --function-name db-backup (through the Lambda emulator)"
aws lambda invoke --endpoint-url "$LAMBDA" --function-name db-backup \
  --payload '{"tag": "demo"}' "$ROOT/.stack/demo-response.json" >/dev/null
python3 - "$ROOT/.stack/demo-response.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"status:  {r['status']}\nsummary: {r['summary']}\nrecord:  {r['record_key']}")
for d in r["outputs"]["databases"]:
    print(f"backup:  {d['key']} ({d['engine']} engine, {d['objects']} objects)\n         {d['bytes']} bytes stored, {d['uncompressed_bytes']} bytes of SQL\nmanifest: {d['manifest_key']}")
if r["status"] != "succeeded":
    sys.exit(1)
PY
MANIFEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"]["databases"][0]["manifest_key"])' "$ROOT/.stack/demo-response.json")

say "objects in s3://backstop-local/backstop/"
aws s3 ls --endpoint-url "$MOTO" --recursive "s3://backstop-local/${MANIFEST%.manifest.json}" 

say "the outcome, as the SQS queue subscribed to the SNS topic received it"
QUEUE_URL=$(aws sqs get-queue-url --endpoint-url "$MOTO" --queue-name backstop-local-outcomes --output text --query QueueUrl)
# The queue may hold other runs' outcomes (tests share it): read until this run's turns up.
for _ in 1 2 3 4 5 6; do
  aws sqs receive-message --endpoint-url "$MOTO" --queue-url "$QUEUE_URL" --max-number-of-messages 10 \
    --wait-time-seconds 2 --output json | python3 -c '
import json, sys
run_id = json.load(open(sys.argv[1]))["run_id"]
for m in (json.loads(sys.stdin.read() or "{}")).get("Messages", []):
    body = json.loads(m["Body"])
    if json.loads(body["Message"]).get("run_id") == run_id:
        attrs = {k: v["Value"] for k, v in body.get("MessageAttributes", {}).items()}
        print("subject:   ", body["Subject"]); print("attributes:", attrs)
        sys.exit(3)
' "$ROOT/.stack/demo-response.json" || break
done

say "restore check: the backup's parts, in manifest order, decompressed into psql, in a scratch database"
PGOPTIONS='--client-min-messages=warning' psql -X -q -h 127.0.0.1 -U postgres -d postgres \
  -c "drop database if exists backstop_demo_restored" \
  -c "create database backstop_demo_restored"
aws s3 cp --endpoint-url "$MOTO" --quiet "s3://backstop-local/$MANIFEST" - \
  | python3 -c 'import json,sys; print("\n".join(o["key"] for o in json.load(sys.stdin)["objects"]))' \
  | while read -r key; do aws s3 cp --endpoint-url "$MOTO" --quiet "s3://backstop-local/$key" - | zstd -dc; done \
  | psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d backstop_demo_restored >/dev/null
for db in backstop_demo backstop_demo_restored; do
  printf '%-24s' "$db"; psql -X -tA -h 127.0.0.1 -U postgres -d "$db" -c \
    "select string_agg(format('%s=%s', t, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I', t), false, true, '')))[1]), ' ' order by t) from unnest(array['auth_user','shop_order','shop_product','notifications_notification']) t"
done
say "done: a real backup of a real PostgreSQL, through the real Lambda runtime, into S3"

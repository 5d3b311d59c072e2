# The outcome topic: every run's outcome (job/status/env attributes), Lambda's failure records,
# and the alarms.

resource "aws_sns_topic" "outcomes" {
  name              = "${var.name}-outcomes"
  kms_master_key_id = local.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = var.alert_emails
  topic_arn = aws_sns_topic.outcomes.arn
  protocol  = "email"
  endpoint  = each.value
  # Failures only: the jobs' failed outcomes (status attribute) and the messages without one —
  # Lambda's records of crashed or timed-out invocations, and the alarms.
  filter_policy = var.alert_failures_only ? jsonencode({
    "$or" = [
      { status = ["failed"] },
      { status = [{ exists = false }] },
    ]
  }) : null
}

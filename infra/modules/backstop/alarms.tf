# Alarms, all to the topic: a function's errors (a crash or a timeout included), and freshness
# — no successful backup of a database (or of the media) for var.freshness_hours, from the EMF
# metrics the jobs write (namespace Backstop), missing data counted as breaching: a schedule
# that stopped firing alarms too.

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each            = local.lambda_functions
  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "${each.key} failed (its outcome message says why; a timeout or crash has only Lambda's record)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.outcomes.arn]
  tags                = var.tags
}

# Fargate runs have no Lambda metrics: a run that reports Success 0 alarms.
resource "aws_cloudwatch_metric_alarm" "task_failures" {
  for_each            = local.fargate_functions
  alarm_name          = "${var.name}-${each.key}-failures"
  alarm_description   = "${each.key} (Fargate) reported a failed run."
  namespace           = "Backstop"
  metric_name         = "Success"
  dimensions          = { Job = each.key, Env = var.env }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.outcomes.arn]
  tags                = var.tags
}

locals {
  # One freshness alarm per database db-backup backs up, and one for the media (dimensions as
  # maps, so that both kinds of entry have one type and for_each takes the merge).
  freshness = merge(
    contains(var.functions, "db-backup") ? {
      for db in var.databases : "db-${db}" => {
        what       = "backup of database ${db}"
        dimensions = tomap({ Job = "db-backup", Env = var.env, Database = db })
      }
    } : {},
    contains(var.functions, "media-sync") ? {
      "media" = { what = "media sync", dimensions = tomap({ Job = "media-sync", Env = var.env }) }
    } : {},
  )
}

resource "aws_cloudwatch_metric_alarm" "freshness" {
  for_each            = local.freshness
  alarm_name          = "${var.name}-${each.key}-stale"
  alarm_description   = "No successful ${each.value.what} (${var.env}) in ${var.freshness_hours} hours."
  namespace           = "Backstop"
  metric_name         = "Success"
  dimensions          = each.value.dimensions
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = var.freshness_hours
  datapoints_to_alarm = var.freshness_hours
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.outcomes.arn]
  ok_actions          = [aws_sns_topic.outcomes.arn]
  tags                = var.tags
}

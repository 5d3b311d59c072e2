# Schedules: EventBridge Scheduler (time zones) by default, classic EventBridge rules where
# asked. Each entry of var.schedules fires one function (or its Fargate task) with its input.

locals {
  schedules        = { for k, s in var.schedules : k => s if contains(var.functions, s.function) }
  lambda_schedules = { for k, s in local.schedules : k => s if contains(local.lambda_functions, s.function) }
  task_schedules   = { for k, s in local.schedules : k => s if contains(local.fargate_functions, s.function) }
  use_scheduler    = var.scheduler == "eventbridge-scheduler"
}

data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count              = local.use_scheduler && length(local.schedules) > 0 ? 1 : 0
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "Invoke"
    actions   = ["lambda:InvokeFunction"]
    resources = length(local.lambda_functions) > 0 ? [for f in local.lambda_functions : aws_lambda_function.function[f].arn] : ["arn:${local.partition}:lambda:${local.region}:${local.account}:function:none"]
  }
  dynamic "statement" {
    for_each = length(local.fargate_functions) > 0 ? [1] : []
    content {
      sid       = "RunTask"
      actions   = ["ecs:RunTask"]
      resources = [for f in local.fargate_functions : aws_ecs_task_definition.runner[f].arn_without_revision]
    }
  }
  dynamic "statement" {
    for_each = length(local.fargate_functions) > 0 ? [1] : []
    content {
      sid       = "PassTaskRoles"
      actions   = ["iam:PassRole"]
      resources = concat([for f in local.fargate_functions : aws_iam_role.function[f].arn], [aws_iam_role.task_execution[0].arn])
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = local.use_scheduler && length(local.schedules) > 0 ? 1 : 0
  name   = "invoke"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "job" {
  for_each                     = local.use_scheduler ? local.schedules : {}
  name                         = "${var.name}-${each.key}"
  schedule_expression          = each.value.expression
  schedule_expression_timezone = each.value.timezone
  state                        = each.value.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = local.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = contains(local.fargate_functions, each.value.function) ? aws_ecs_cluster.runner[0].arn : aws_lambda_function.function[each.value.function].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = contains(local.fargate_functions, each.value.function) ? jsonencode({ containerOverrides = [{ name = "backstop", command = [each.value.function, "--payload", each.value.input] }] }) : each.value.input

    # Lambda retries failed runs itself (aws_lambda_function_event_invoke_config).
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = var.max_event_age_s
    }

    dynamic "ecs_parameters" {
      for_each = contains(local.fargate_functions, each.value.function) ? [1] : []
      content {
        task_definition_arn = aws_ecs_task_definition.runner[each.value.function].arn_without_revision
        launch_type         = "FARGATE"
        network_configuration {
          subnets          = var.subnet_ids
          security_groups  = var.security_group_ids
          assign_public_ip = false
        }
      }
    }
  }
}

# Classic rules (UTC only), for accounts or tooling that use them.
resource "aws_cloudwatch_event_rule" "job" {
  for_each            = local.use_scheduler ? {} : local.lambda_schedules
  name                = "${var.name}-${each.key}"
  schedule_expression = each.value.expression
  state               = each.value.enabled ? "ENABLED" : "DISABLED"
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = each.value.timezone == "UTC"
      error_message = "Schedule ${each.key}: classic EventBridge rules run in UTC only; use scheduler = \"eventbridge-scheduler\" for ${each.value.timezone}."
    }
  }
}

resource "aws_cloudwatch_event_target" "job" {
  for_each = local.use_scheduler ? {} : local.lambda_schedules
  rule     = aws_cloudwatch_event_rule.job[each.key].name
  arn      = aws_lambda_function.function[each.value.function].arn
  input    = each.value.input
}

resource "aws_lambda_permission" "rule" {
  for_each      = local.use_scheduler ? {} : local.lambda_schedules
  statement_id  = "schedule-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.job[each.key].arn
}

# The functions: provided.al2023 on arm64, the zips scripts/package.sh builds.

resource "aws_cloudwatch_log_group" "function" {
  for_each          = var.functions
  name              = contains(local.fargate_functions, each.key) ? "/ecs/${var.name}-${each.key}" : "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "function" {
  # checkov:skip=CKV_AWS_116:Failed async invocations go to the SNS topic (on-failure destination in aws_lambda_function_event_invoke_config), which is what a DLQ would be for.
  # checkov:skip=CKV_AWS_117:A VPC is optional (subnet_ids); a database on the public internet needs none.
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile this module cannot assume; the zips' hashes pin the code.
  # checkov:skip=CKV_AWS_50:The functions emit no X-Ray segments; run records, SNS outcomes and EMF metrics are their telemetry.
  # checkov:skip=CKV_AWS_115:Reserved concurrency is a variable (reserved_concurrency); accounts with a low quota cannot reserve any.
  for_each         = local.lambda_functions
  function_name    = "${var.name}-${each.key}"
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.package_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.package_dir}/${each.key}/bootstrap.zip")
  memory_size      = var.memory_mb[each.key]
  timeout          = var.timeout_s[each.key]
  kms_key_arn      = local.kms_key_arn

  reserved_concurrent_executions = var.reserved_concurrency == null ? -1 : var.reserved_concurrency

  # Nothing writes /tmp: ephemeral storage stays at the minimum.
  ephemeral_storage {
    size = 512
  }

  environment {
    variables = local.environment[each.key]
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  dynamic "vpc_config" {
    for_each = local.vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  lifecycle {
    precondition {
      condition     = !contains(["db-backup", "notification-cleanup"], each.key) || ((var.db_secret_arn == null) != (var.db_iam_auth == null))
      error_message = "${each.key} needs one of db_secret_arn and db_iam_auth."
    }
    precondition {
      condition     = each.key != "media-sync" || var.media_source != null
      error_message = "media-sync needs media_source."
    }
  }

  tags = var.tags
}

# "Retry, then tell someone": Lambda retries a failed scheduled run, then sends the invocation
# record to the topic (the job has published its own outcome already; this one also covers a
# crash or a timeout).
resource "aws_lambda_function_event_invoke_config" "function" {
  for_each                     = local.lambda_functions
  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = var.retry_attempts
  maximum_event_age_in_seconds = var.max_event_age_s

  destination_config {
    on_failure {
      destination = aws_sns_topic.outcomes.arn
    }
  }
}

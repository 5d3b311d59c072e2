# One role per function, allowing exactly what its code calls (backstop_core::access, printed
# by `backstop deploy-spec`; tests/infra compares each statement below with it). Platform
# statements — logs, KMS — carry the sids "Logs" and "Kms".

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "assume_task" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = var.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = contains(local.fargate_functions, each.key) ? data.aws_iam_policy_document.assume_task.json : data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = var.functions
  name     = "backstop"
  role     = aws_iam_role.function[each.key].id
  policy   = local.policies[each.key]
}

resource "aws_iam_role_policy" "platform" {
  for_each = var.functions
  name     = "platform"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.platform[each.key].json
}

resource "aws_iam_role_policy_attachment" "vpc" {
  for_each   = local.vpc ? local.lambda_functions : toset([])
  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "platform" {
  for_each = var.functions
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_keys
  }
}

# What several functions share: publishing outcomes, and the database's credentials (a secret
# or RDS IAM authentication, whichever is configured).
data "aws_iam_policy_document" "outcomes" {
  statement {
    sid       = "Outcomes"
    actions   = ["sns:Publish"]
    resources = [local.resources["topic"]]
  }
}

data "aws_iam_policy_document" "database" {
  source_policy_documents = [data.aws_iam_policy_document.outcomes.json]
  dynamic "statement" {
    for_each = var.db_secret_arn == null ? [] : [1]
    content {
      sid       = "DatabaseSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.resources["db_secret"]]
    }
  }
  dynamic "statement" {
    for_each = var.db_iam_auth == null ? [] : [1]
    content {
      sid       = "DatabaseIamAuth"
      actions   = ["rds-db:connect"]
      resources = [local.resources["db_user"]]
    }
  }
}

data "aws_iam_policy_document" "db_backup" {
  source_policy_documents = [data.aws_iam_policy_document.database.json]
  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [local.resources["bucket"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}db/*"]
    }
  }
  statement {
    sid       = "ListUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [local.resources["bucket"]]
  }
  statement {
    sid       = "Backups"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.resources["objects:db/"]]
  }
  statement {
    sid       = "RunRecords"
    actions   = ["s3:PutObject"]
    resources = [local.resources["objects:runs/db-backup/"]]
  }
}

data "aws_iam_policy_document" "media_sync" {
  source_policy_documents = [data.aws_iam_policy_document.outcomes.json]
  statement {
    sid       = "ListMirror"
    actions   = ["s3:ListBucket"]
    resources = [local.resources["bucket"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}media/*"]
    }
  }
  statement {
    sid       = "ListUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [local.resources["bucket"]]
  }
  statement {
    sid       = "Mirror"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.resources["objects:media/"]]
  }
  statement {
    sid       = "RunRecords"
    actions   = ["s3:PutObject"]
    resources = [local.resources["objects:runs/media-sync/"]]
  }
  statement {
    sid       = "ListSource"
    actions   = ["s3:ListBucket"]
    resources = [local.resources["media_bucket"]]
  }
  statement {
    sid       = "ReadSource"
    actions   = ["s3:GetObject"]
    resources = [local.resources["media_objects"]]
  }
  dynamic "statement" {
    for_each = var.media_secret_arn == null ? [] : [1]
    content {
      sid       = "SourceSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.resources["media_secret"]]
    }
  }
}

data "aws_iam_policy_document" "notification_cleanup" {
  source_policy_documents = [data.aws_iam_policy_document.database.json]
  statement {
    sid       = "RunRecords"
    actions   = ["s3:PutObject"]
    resources = [local.resources["objects:runs/notification-cleanup/"]]
  }
}

data "aws_iam_policy_document" "retention_prune" {
  source_policy_documents = [data.aws_iam_policy_document.outcomes.json]
  statement {
    sid       = "ListEverything"
    actions   = ["s3:ListBucket"]
    resources = [local.resources["bucket"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}db/*", "${var.prefix}media/*", "${var.prefix}runs/*"]
    }
  }
  statement {
    sid       = "ListUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [local.resources["bucket"]]
  }
  statement {
    sid       = "Backups"
    actions   = ["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.resources["objects:db/"]]
  }
  statement {
    sid       = "Media"
    actions   = ["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.resources["objects:media/"]]
  }
  statement {
    sid       = "OldRunRecords"
    actions   = ["s3:DeleteObject"]
    resources = [local.resources["objects:runs/"]]
  }
  statement {
    sid       = "RunRecords"
    actions   = ["s3:PutObject"]
    resources = [local.resources["objects:runs/retention-prune/"]]
  }
}

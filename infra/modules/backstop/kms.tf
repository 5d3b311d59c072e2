# One key for the bucket, topic, logs, schedules and environment variables, unless one is given.

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:A key policy's resource is the key itself ("*"); permissions are scoped by principal.
  # checkov:skip=CKV_AWS_111:Same: "*" in a key policy means this key.
  # checkov:skip=CKV_AWS_356:Same: "*" in a key policy means this key.
  statement {
    sid       = "Account"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "Services"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*", "kms:Encrypt", "kms:ReEncrypt*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com", "cloudwatch.amazonaws.com", "sns.amazonaws.com", "scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_kms_key" "backstop" {
  count                   = local.create_key ? 1 : 0
  description             = "Backstop (${var.name}): backups, outcomes, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "backstop" {
  count         = local.create_key ? 1 : 0
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.backstop[0].key_id
}

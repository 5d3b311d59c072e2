# The backup bucket, when none is given: versioned, SSE-KMS, public access blocked, TLS only,
# incomplete uploads aborted after a day, Object Lock optional.

resource "aws_s3_bucket" "backups" {
  # checkov:skip=CKV_AWS_18:Access logs need a second bucket; the run records say what every job did. Enable on the bucket you pass instead where policy asks.
  # checkov:skip=CKV_AWS_144:Cross-region replication is a choice of the user's (a second region, its cost); copy the bucket with your own replication rule.
  # checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; outcomes are published to the topic.
  count               = local.create_bucket ? 1 : 0
  bucket_prefix       = "${var.name}-backups-"
  object_lock_enabled = var.object_lock_days != null
  tags                = var.tags
}

resource "aws_s3_bucket_versioning" "backups" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.backups[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.backups[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  count                   = local.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.backups[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "backups" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.backups[0].id
  policy = data.aws_iam_policy_document.tls_only.json
}

resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  count  = local.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.backups[0].id
  # A crashed upload's parts cost money and show nowhere; retention-prune deletes old versions'
  # current objects, this deletes what versioning keeps of them.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }
}

resource "aws_s3_bucket_object_lock_configuration" "backups" {
  count  = local.create_bucket && var.object_lock_days != null ? 1 : 0
  bucket = aws_s3_bucket.backups[0].id
  rule {
    default_retention {
      mode = "GOVERNANCE"
      days = var.object_lock_days
    }
  }
}

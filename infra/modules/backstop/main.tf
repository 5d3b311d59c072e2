# Backstop: the four jobs as Lambda functions (or Fargate tasks), their roles, schedules,
# outcome topic, backup bucket, alarms. The names of resources in `local.resources` are the
# targets of `backstop deploy-spec` (backstop_core::access); tests/infra checks the roles
# against it.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  create_bucket = var.bucket_name == null
  bucket        = local.create_bucket ? aws_s3_bucket.backups[0].id : var.bucket_name
  bucket_arn    = "arn:${local.partition}:s3:::${local.bucket}"
  create_key    = var.kms_key_arn == null
  kms_key_arn   = local.create_key ? aws_kms_key.backstop[0].arn : var.kms_key_arn

  media_path   = var.media_source == null ? [] : split("/", trimprefix(var.media_source, "s3://"))
  media_bucket = var.media_source == null ? null : local.media_path[0]
  media_prefix = join("/", slice(local.media_path, min(1, length(local.media_path)), length(local.media_path)))

  # The targets of backstop_core::access, as ARNs.
  resources = {
    "bucket"                             = local.bucket_arn
    "objects:db/"                        = "${local.bucket_arn}/${var.prefix}db/*"
    "objects:media/"                     = "${local.bucket_arn}/${var.prefix}media/*"
    "objects:runs/"                      = "${local.bucket_arn}/${var.prefix}runs/*"
    "objects:runs/db-backup/"            = "${local.bucket_arn}/${var.prefix}runs/db-backup/*"
    "objects:runs/media-sync/"           = "${local.bucket_arn}/${var.prefix}runs/media-sync/*"
    "objects:runs/notification-cleanup/" = "${local.bucket_arn}/${var.prefix}runs/notification-cleanup/*"
    "objects:runs/retention-prune/"      = "${local.bucket_arn}/${var.prefix}runs/retention-prune/*"
    "media_bucket"                       = "arn:${local.partition}:s3:::${coalesce(local.media_bucket, "none")}"
    "media_objects"                      = "arn:${local.partition}:s3:::${coalesce(local.media_bucket, "none")}/${local.media_prefix}*"
    "db_secret"                          = coalesce(var.db_secret_arn, "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:none")
    "db_user"                            = "arn:${local.partition}:rds-db:${local.region}:${local.account}:dbuser:${var.db_iam_auth == null ? "none" : var.db_iam_auth.resource_id}/${local.db_iam_user}"
    "media_secret"                       = coalesce(var.media_secret_arn, "arn:${local.partition}:secretsmanager:${local.region}:${local.account}:secret:none")
    "topic"                              = aws_sns_topic.outcomes.arn
  }

  # Every function: where its code runs and what it is given.
  lambda_functions  = setsubtract(var.functions, var.fargate_functions)
  fargate_functions = setintersection(var.functions, var.fargate_functions)

  common_environment = {
    BACKSTOP_BUCKET        = local.bucket
    BACKSTOP_PREFIX        = var.prefix
    BACKSTOP_ENV           = var.env
    BACKSTOP_SNS_TOPIC_ARN = aws_sns_topic.outcomes.arn
    RUST_LOG               = "info"
  }
  # The database: a secret (password) or RDS IAM authentication (a token per connection).
  db_environment = merge(
    { BACKSTOP_DB_SSLMODE = var.db_sslmode },
    var.db_secret_arn == null ? {} : { BACKSTOP_DB_SECRET_ID = var.db_secret_arn },
    var.db_endpoint == null ? {} : { BACKSTOP_DB_HOST = var.db_endpoint.host, BACKSTOP_DB_PORT = tostring(var.db_endpoint.port) },
    try(var.db_endpoint.name, null) == null ? {} : { BACKSTOP_DB_NAME = var.db_endpoint.name },
    var.db_iam_auth == null ? {} : { BACKSTOP_DB_IAM_URL = var.db_iam_auth.url },
  )
  db_iam_user = var.db_iam_auth == null ? "none" : regex("^postgres(?:ql)?://([^@:/]+)@", var.db_iam_auth.url)[0]
  function_environment = {
    "db-backup"            = local.db_environment
    "notification-cleanup" = merge(local.db_environment, { BACKSTOP_CLEANUP_RULES = var.cleanup_rules })
    "media-sync" = merge(
      { BACKSTOP_MEDIA_SOURCE = coalesce(var.media_source, "unset") },
      var.media_endpoint_url == null ? {} : { BACKSTOP_MEDIA_ENDPOINT_URL = var.media_endpoint_url },
      var.media_secret_arn == null ? {} : { BACKSTOP_MEDIA_SECRET_ID = var.media_secret_arn },
    )
    "retention-prune" = {
      BACKSTOP_RETENTION = var.retention_policy
    }
  }
  environment = { for f in var.functions : f => merge(local.common_environment, local.function_environment[f]) }

  policies = {
    "db-backup"            = data.aws_iam_policy_document.db_backup.json
    "media-sync"           = data.aws_iam_policy_document.media_sync.json
    "notification-cleanup" = data.aws_iam_policy_document.notification_cleanup.json
    "retention-prune"      = data.aws_iam_policy_document.retention_prune.json
  }

  # Keys the functions' data and messages are encrypted with (the module's own key, the
  # database secret's and the media bucket's where customer managed).
  kms_keys = compact([local.kms_key_arn, var.db_secret_kms_key_arn, var.media_kms_key_arn])
  vpc      = length(var.subnet_ids) > 0
}

# Every variable maps to something the functions read or the AWS resources they need; the
# functions' environment variables are listed by `backstop deploy-spec` and tests/infra checks
# this module against it.

variable "name" {
  description = "Name prefix of every resource (functions are named \"{name}-{function}\")."
  type        = string
  default     = "backstop"
  validation {
    condition     = can(regex("^[a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 1-40 lowercase letters, digits or '-'."
  }
}

variable "env" {
  description = "BACKSTOP_ENV: the environment's name in object names, run records and messages."
  type        = string
  default     = "production"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.env))
    error_message = "env must be letters, digits, '-' or '_' (it is part of object names)."
  }
}

variable "package_dir" {
  description = "Where scripts/package.sh wrote the function zips ({package_dir}/{function}/bootstrap.zip)."
  type        = string
}

variable "functions" {
  description = "Which functions to deploy. db-backup and notification-cleanup need db_secret_arn or db_iam_auth; media-sync needs media_source."
  type        = set(string)
  default     = ["db-backup", "media-sync", "notification-cleanup", "retention-prune"]
  validation {
    condition     = length(setsubtract(var.functions, ["db-backup", "media-sync", "notification-cleanup", "retention-prune"])) == 0
    error_message = "functions are db-backup, media-sync, notification-cleanup and retention-prune."
  }
}

variable "memory_mb" {
  description = "Memory per function (MB). db-backup needs ~27 MiB plus ~18 MiB per worker; Lambda gives one vCPU per 1,769 MB, so 2,048 MB for its default 2 jobs."
  type        = map(number)
  default = {
    "db-backup"            = 2048
    "media-sync"           = 1024
    "notification-cleanup" = 256
    "retention-prune"      = 512
  }
}

variable "timeout_s" {
  description = "Timeout per function (seconds, at most 900). The jobs write their run record and publish before it."
  type        = map(number)
  default = {
    "db-backup"            = 900
    "media-sync"           = 900
    "notification-cleanup" = 300
    "retention-prune"      = 900
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function (1 keeps two runs of a job from overlapping); null leaves it unreserved (accounts with a low concurrency quota cannot reserve)."
  type        = number
  default     = null
}

# --- Where backups go -------------------------------------------------------------------------

variable "bucket_name" {
  description = "An existing backup bucket (BACKSTOP_BUCKET). Null: the module creates one, versioned, SSE-KMS, TLS-only, public access blocked."
  type        = string
  default     = null
}

variable "prefix" {
  description = "BACKSTOP_PREFIX: the key prefix of everything Backstop writes; the roles are scoped to it."
  type        = string
  default     = "backstop/"
  validation {
    condition     = can(regex("^([A-Za-z0-9!_.*'()-]+/)*$", var.prefix))
    error_message = "prefix must be empty or end with '/'."
  }
}

variable "object_lock_days" {
  description = "A bucket the module creates: Object Lock in governance mode for this many days (retention-prune skips locked objects). Null: no Object Lock."
  type        = number
  default     = null
}

variable "kms_key_arn" {
  description = "A KMS key for the bucket, topic, logs and environment variables. Null: the module creates one (rotation on)."
  type        = string
  default     = null
}

# --- Databases ----------------------------------------------------------------------------

variable "db_secret_arn" {
  description = "BACKSTOP_DB_SECRET_ID: a Secrets Manager secret with the database credentials in the RDS format (e.g. the one RDS manages for the master user)."
  type        = string
  default     = null
}

variable "db_endpoint" {
  description = "BACKSTOP_DB_HOST, _PORT and _NAME: where the database is when the secret does not say. A secret RDS manages for the master user (manage_master_user_password) holds only username and password: pass the instance's address, port and db_name (or the cluster's endpoint) here."
  type = object({
    host = string
    port = optional(number, 5432)
    name = optional(string)
  })
  default = null
}

variable "db_iam_auth" {
  description = "RDS IAM database authentication instead of a secret: url (BACKSTOP_DB_IAM_URL, postgres://user@host:port/db, no password) and the instance's resource_id (DbiResourceId) for rds-db:connect. TLS is then required."
  type = object({
    url         = string
    resource_id = string
  })
  default = null
}

variable "db_secret_kms_key_arn" {
  description = "The key the database secret is encrypted with, when it is a customer managed key (RDS-managed secrets use one); null for the AWS managed key."
  type        = string
  default     = null
}

variable "db_sslmode" {
  description = "BACKSTOP_DB_SSLMODE: require (encrypted; the default, as RDS 15+ wants), verify-full (also checks the certificate against system roots), prefer or disable."
  type        = string
  default     = "require"
  validation {
    condition     = contains(["disable", "prefer", "require", "verify-full"], var.db_sslmode)
    error_message = "db_sslmode is disable, prefer, require or verify-full."
  }
}

variable "cleanup_rules" {
  description = "BACKSTOP_CLEANUP_RULES: notification-cleanup's rules (JSON list) when a schedule's input has none."
  type        = string
  default     = "[]"
}

variable "retention_policy" {
  description = "BACKSTOP_RETENTION: retention-prune's keep-policy (JSON) when a schedule's input has none."
  type        = string
  default     = "{\"policy\":{\"keep_daily\":7,\"keep_weekly\":4,\"keep_monthly\":6,\"keep_tags\":[\"manual\",\"pre-migration\"]}}"
}

# --- Media ----------------------------------------------------------------------------------

variable "media_source" {
  description = "BACKSTOP_MEDIA_SOURCE: s3://bucket/prefix of the application's uploads (media-sync)."
  type        = string
  default     = null
  validation {
    condition     = var.media_source == null || can(regex("^s3://[a-z0-9.-]{3,63}(/.*)?$", var.media_source))
    error_message = "media_source is s3://bucket/prefix."
  }
}

variable "media_kms_key_arn" {
  description = "The key the media bucket is encrypted with, when it is a customer managed key."
  type        = string
  default     = null
}

# --- Schedules and retries --------------------------------------------------------------

variable "schedules" {
  description = "Schedules per job: function, expression (cron() or rate()), time zone (IANA, e.g. Europe/Berlin), input (the payload, JSON). Several per job are fine (hourly and daily backups)."
  type = map(object({
    function   = string
    expression = string
    timezone   = optional(string, "UTC")
    input      = optional(string, "{}")
    enabled    = optional(bool, true)
  }))
  default = {
    "db-daily"       = { function = "db-backup", expression = "cron(0 0 * * ? *)" }
    "media-daily"    = { function = "media-sync", expression = "cron(0 0 * * ? *)" }
    "cleanup-weekly" = { function = "notification-cleanup", expression = "cron(0 0 ? * SUN *)" }
    "prune-daily"    = { function = "retention-prune", expression = "cron(0 3 * * ? *)" }
  }
}

variable "scheduler" {
  description = "eventbridge-scheduler (time zones) or eventbridge-rules (classic rules, UTC only)."
  type        = string
  default     = "eventbridge-scheduler"
  validation {
    condition     = contains(["eventbridge-scheduler", "eventbridge-rules"], var.scheduler)
    error_message = "scheduler is eventbridge-scheduler or eventbridge-rules."
  }
}

variable "retry_attempts" {
  description = "Lambda's retries of a failed scheduled run (0-2; 2 means three attempts), before the failure goes to the topic."
  type        = number
  default     = 2
}

variable "max_event_age_s" {
  description = "How long a scheduled invocation may wait to run (60-21600 s)."
  type        = number
  default     = 3600
}

# --- Notifications and alarms ----------------------------------------------------------

variable "alert_emails" {
  description = "E-mail addresses subscribed to the topic (each confirms by mail)."
  type        = set(string)
  default     = []
}

variable "alert_failures_only" {
  description = "E-mail subscriptions receive failures only (a filter policy on the status attribute; Lambda's own failure records too)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the functions' logs."
  type        = number
  default     = 365
}

variable "freshness_hours" {
  description = "Alarm when a database (or the media) had no successful backup for this many hours."
  type        = number
  default     = 25
}

variable "databases" {
  description = "Database names db-backup backs up, one freshness alarm each (the Database dimension of its metrics)."
  type        = set(string)
  default     = []
}

# --- Network ------------------------------------------------------------------------------

variable "subnet_ids" {
  description = "Private subnets for the functions (a database in a VPC). Empty: no VPC."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups for the functions (allowed to reach the database on 5432)."
  type        = list(string)
  default     = []
}

variable "create_vpc_endpoints" {
  description = "Create interface endpoints for Secrets Manager and SNS and the S3 gateway endpoint; without them (or a NAT gateway) functions in private subnets time out."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "The VPC of subnet_ids (for the endpoints)."
  type        = string
  default     = null
}

variable "route_table_ids" {
  description = "Route tables the S3 gateway endpoint is attached to."
  type        = list(string)
  default     = []
}

# --- Fargate runner ---------------------------------------------------------------------------

variable "fargate_functions" {
  description = "Jobs run as an ECS Fargate task (the backstop CLI from runner_image) instead of Lambda: databases past 15 minutes or Lambda's memory."
  type        = set(string)
  default     = []
}

variable "runner_image" {
  description = "The container image built from infra/runner/Dockerfile (required with fargate_functions)."
  type        = string
  default     = null
}

variable "runner_cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 2048
}

variable "runner_memory_mb" {
  description = "Fargate task memory (MB)."
  type        = number
  default     = 4096
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

variable "media_endpoint_url" {
  description = "BACKSTOP_MEDIA_ENDPOINT_URL: the media source's own S3 endpoint (MinIO, another provider); objects are then streamed, not copied server-side."
  type        = string
  default     = null
}

variable "media_secret_arn" {
  description = "BACKSTOP_MEDIA_SECRET_ID: a secret with access_key_id and secret_access_key for media_endpoint_url."
  type        = string
  default     = null
}

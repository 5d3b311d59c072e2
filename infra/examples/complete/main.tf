# Backstop beside an application in an existing VPC: the RDS-managed secret, the media bucket,
# hourly and daily backups in local time, e-mail on failures, VPC endpoints for the private
# subnets, and the Fargate runner for a database past Lambda's 15 minutes.
#
#   scripts/package.sh
#   docker build -f infra/runner/Dockerfile -t <account>.dkr.ecr.<region>.amazonaws.com/backstop:1 .
#   terraform init && terraform apply

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

provider "aws" {}

variable "vpc_id" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "private_route_table_ids" {
  type = list(string)
}

variable "db_instance_id" {
  description = "The RDS instance whose managed master secret Backstop reads."
  type        = string
}

variable "media_bucket" {
  type = string
}

variable "runner_image" {
  description = "The image built from infra/runner/Dockerfile, pushed to ECR."
  type        = string
}

variable "alert_email" {
  type = string
}

data "aws_db_instance" "app" {
  db_instance_identifier = var.db_instance_id
}

data "aws_security_group" "db" {
  # The database's group; Backstop's group below is allowed in on 5432.
  id = tolist(data.aws_db_instance.app.vpc_security_groups)[0]
}

resource "aws_security_group" "backstop" {
  name        = "backstop"
  description = "Backstop functions: out to the database and the VPC endpoints only"
  vpc_id      = var.vpc_id
  egress {
    description     = "PostgreSQL"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [data.aws_security_group.db.id]
  }
  egress {
    description = "HTTPS to the VPC endpoints (S3, Secrets Manager, SNS)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/8"]
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints" {
  description                  = "The VPC endpoints take HTTPS from Backstop"
  security_group_id            = aws_security_group.backstop.id
  referenced_security_group_id = aws_security_group.backstop.id
  from_port                    = 443
  to_port                      = 443
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  description                  = "Backstop reads the database"
  security_group_id            = data.aws_security_group.db.id
  referenced_security_group_id = aws_security_group.backstop.id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

module "backstop" {
  source      = "../../modules/backstop"
  name        = "backstop"
  env         = "production"
  package_dir = "${path.root}/../../../target/lambda"

  db_secret_arn         = data.aws_db_instance.app.master_user_secret[0].secret_arn
  db_secret_kms_key_arn = data.aws_db_instance.app.master_user_secret[0].kms_key_id
  # The RDS-managed secret holds only username and password: the endpoint comes from here.
  db_endpoint = {
    host = data.aws_db_instance.app.address
    port = data.aws_db_instance.app.port
    name = data.aws_db_instance.app.db_name
  }
  db_sslmode = "require"
  databases  = [data.aws_db_instance.app.db_name]
  cleanup_rules = jsonencode([{
    table            = "notifications_notification"
    older_than       = "90d"
    timestamp_column = "created_at"
    filter           = [{ column = "read", op = "=", value = true }]
  }])

  media_source = "s3://${var.media_bucket}/media/"

  schedules = {
    "db-hourly"      = { function = "db-backup", expression = "cron(0 * * * ? *)", timezone = "Europe/Berlin", input = jsonencode({ tag = "hourly", jobs = 2 }) }
    "db-daily"       = { function = "db-backup", expression = "cron(30 2 * * ? *)", timezone = "Europe/Berlin", input = jsonencode({ tag = "daily" }) }
    "media-daily"    = { function = "media-sync", expression = "cron(0 3 * * ? *)", timezone = "Europe/Berlin" }
    "cleanup-weekly" = { function = "notification-cleanup", expression = "cron(0 4 ? * SUN *)", timezone = "Europe/Berlin" }
    "prune-daily"    = { function = "retention-prune", expression = "cron(0 5 * * ? *)", timezone = "Europe/Berlin" }
  }

  alert_emails = [var.alert_email]

  subnet_ids           = var.private_subnet_ids
  security_group_ids   = [aws_security_group.backstop.id]
  vpc_id               = var.vpc_id
  create_vpc_endpoints = true
  route_table_ids      = var.private_route_table_ids

  # A database past Lambda's 15 minutes: back it up on Fargate instead.
  fargate_functions = []
  runner_image      = var.runner_image

  tags = { app = "backstop" }
}

output "functions" {
  value = module.backstop.function_names
}

output "invoke" {
  value = module.backstop.invoke_commands
}

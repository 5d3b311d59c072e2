# The least Backstop: nightly backups of one database reachable from Lambda (e.g. RDS with a
# public endpoint and TLS), daily pruning; the module makes the bucket, key and topic.
#
#   scripts/package.sh
#   terraform init && terraform apply -var db_secret_arn=arn:aws:secretsmanager:... -var db_host=….rds.amazonaws.com

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

variable "db_secret_arn" {
  description = "The RDS-managed (or your own) secret with the database credentials."
  type        = string
}

variable "db_host" {
  description = "The database's address: a secret RDS manages (manage_master_user_password) holds no host."
  type        = string
}

module "backstop" {
  source        = "../../modules/backstop"
  package_dir   = "${path.root}/../../../target/lambda"
  functions     = ["db-backup", "retention-prune"]
  db_secret_arn = var.db_secret_arn
  db_endpoint   = { host = var.db_host, name = "app" }
  databases     = ["app"]
}

output "invoke" {
  value = module.backstop.invoke_commands
}

output "function_names" {
  description = "Function name per job."
  value       = { for f in local.lambda_functions : f => aws_lambda_function.function[f].function_name }
}

output "function_arns" {
  description = "Function ARN per job."
  value       = { for f in local.lambda_functions : f => aws_lambda_function.function[f].arn }
}

output "topic_arn" {
  description = "The outcome topic."
  value       = aws_sns_topic.outcomes.arn
}

output "bucket" {
  description = "The backup bucket."
  value       = local.bucket
}

output "kms_key_arn" {
  description = "The key backups, outcomes and logs are encrypted with."
  value       = local.kms_key_arn
}

output "invoke_commands" {
  description = "Ready-to-paste commands that run each job now and print its run record."
  value = {
    for f in local.lambda_functions : f => "aws lambda invoke --function-name ${aws_lambda_function.function[f].function_name} --cli-binary-format raw-in-base64-out --payload '{}' /dev/stdout"
  }
}

output "task_definitions" {
  description = "Fargate task definition per job run on the runner."
  value       = { for f in local.fargate_functions : f => aws_ecs_task_definition.runner[f].arn }
}

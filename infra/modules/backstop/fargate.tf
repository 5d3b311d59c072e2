# The Fargate runner: a job past Lambda's 15 minutes or memory runs as an ECS task of the
# backstop CLI (infra/runner/Dockerfile) — the same code, role scoping, run records and SNS
# outcomes; the same schedules start it (EventBridge Scheduler).

resource "aws_ecs_cluster" "runner" {
  count = length(local.fargate_functions) > 0 ? 1 : 0
  name  = "${var.name}-runner"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = var.tags
}

resource "aws_iam_role" "task_execution" {
  count              = length(local.fargate_functions) > 0 ? 1 : 0
  name               = "${var.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.assume_task.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "task_execution" {
  count      = length(local.fargate_functions) > 0 ? 1 : 0
  role       = aws_iam_role.task_execution[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_ecs_task_definition" "runner" {
  for_each                 = local.fargate_functions
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.runner_cpu
  memory                   = var.runner_memory_mb
  execution_role_arn       = aws_iam_role.task_execution[0].arn
  task_role_arn            = aws_iam_role.function[each.key].arn
  runtime_platform {
    cpu_architecture        = "ARM64"
    operating_system_family = "LINUX"
  }
  container_definitions = jsonencode([{
    name                   = "backstop"
    image                  = var.runner_image
    essential              = true
    readonlyRootFilesystem = true
    command                = [each.key]
    environment            = [for k, v in local.environment[each.key] : { name = k, value = v }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.function[each.key].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "backstop"
      }
    }
  }])
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.runner_image != null && length(var.subnet_ids) > 0 && local.use_scheduler
      error_message = "fargate_functions need runner_image, subnet_ids and scheduler = \"eventbridge-scheduler\"."
    }
  }
}

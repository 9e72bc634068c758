"""Rescind's own cfn-lint rules (E9001-E9006), appended through .cfnlintrc (`append_rules`).

cfn-lint loads every module here by file path (not as a package), so each rule module stands alone.
cfn-lint 1.x lints a SAM template as written, with Globals merged into the resources, so the rules look at
both the SAM resource types and the plain CloudFormation ones.

| id    | module            | what it demands                                                              |
|-------|-------------------|------------------------------------------------------------------------------|
| E9001 | log_groups.py     | every function has its own AWS::Logs::LogGroup, with RetentionInDays         |
| E9002 | async_failures.py | every function or state machine invoked asynchronously has an on-failure      |
|       |                   | destination or a dead-letter queue                                            |
| E9003 | async_failures.py | every EventBridge rule and Scheduler schedule target, and every SAM          |
|       |                   | EventBridgeRule/CloudWatchEvent/Schedule/ScheduleV2 event, has a              |
|       |                   | DeadLetterConfig                                                              |
| E9004 | iam_actions.py    | no Allow statement grants "*", "iam:*", "secretsmanager:*", "kms:*", "states:*" |
| E9005 | state_machines.py | state machine logging has IncludeExecutionData false                         |
| E9006 | function_roles.py | every function has its own role: no two functions name the same Role          |
"""

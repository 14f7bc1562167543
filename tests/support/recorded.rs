//! Every AWS request a function makes in the tests is allowed by that function's own policy
//! in `template.yaml`.
//!
//! A function's clients in the tests sign with an access key id that names it
//! (`autoheal-<layer>`, its binary's name: [`function_credentials`]). The emulator records, for
//! each such request, what IAM authorizes for it: the action, the resource's ARN and the
//! request context its policy's conditions read (`tests/emulator/moto_request_log.py`). When
//! an emulator stops, each recorded authorization is evaluated against the policy the
//! template gives that function, for a stack deployed with the tests' own names
//! ([`emulator_stack`]); a request the policy would deny fails the test that made it, naming
//! the request and what of the policy does not allow it.
//!
//! Where IAM cannot express a limit (no condition key names the field), the code holds it:
//! the parameters of those requests are checked against [`CODE_HELD_LIMITS`] the same way.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cfn::{ACCOUNT, PARTITION, REGION, Stack, function_of_binary};
use crate::iam::{Request, allowed, why_denied};

/// The prefix of the access key ids that name a function.
pub const FUNCTION_KEY_PREFIX: &str = "autoheal-";

/// Where the emulator answers its records.
pub const LOG_PATH: &str = "/autoheal-test/requests";

/// Credentials whose access key id names `layer`'s function.
pub fn function_credentials(layer: autoheal_core::Layer) -> aws_sdk_dynamodb::config::Credentials {
    aws_sdk_dynamodb::config::Credentials::new(
        format!("{FUNCTION_KEY_PREFIX}{layer}"),
        "test",
        None,
        None,
        "tests",
    )
}

/// The template deployed with the names the tests' deployment uses (`autoheal bootstrap`'s
/// table and topic, the follow-ups' default group and role, the restart document the tests
/// create, the hooks the shipped rules name), acting on every resource (`Scope=all`), and
/// healing in the tests' member accounts (`crate::accounts`).
pub fn emulator_stack() -> Stack {
    let arn = |service: &str, resource: &str| {
        format!("arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}")
    };
    let table = crate::TABLE;
    Stack::new(&[])
        .with_resource("NotificationTopic", &arn("sns", "autoheal-notifications"))
        .with_resource("NotificationKey.Arn", &arn("kms", "key/notifications"))
        .with_resource("StateTable", table)
        .with_resource(
            "StateTable.Arn",
            &arn("dynamodb", &format!("table/{table}")),
        )
        .with_resource("FollowUpScheduleGroup", "default")
        .with_resource(
            "FollowUpSchedulerRole.Arn",
            &format!("arn:{PARTITION}:iam::{ACCOUNT}:role/autoheal-scheduler"),
        )
        .with_resource("DeadLetterQueue.Arn", crate::DEAD_LETTER_ARN)
        .with_resource(
            "RestartProcessDocument",
            crate::application::RESTART_DOCUMENT,
        )
        .with_parameter("Scope", "all")
        .with_parameter("HealMemberAccounts", "true")
        .with_parameter(
            "MemberAccounts",
            &format!(
                "{},{}",
                crate::accounts::MEMBER_B,
                crate::accounts::MEMBER_C
            ),
        )
        .with_parameter(
            "MemberRegions",
            &format!("{REGION},{}", crate::accounts::OTHER_REGION),
        )
        .with_parameter(
            "CacheHookFunctionArn",
            &arn("lambda", "function:autoheal-cache-hook"),
        )
        .with_parameter(
            "IntegrityHookFunctionArn",
            &arn("lambda", "function:autoheal-integrity-hook"),
        )
}

/// Requests whose limits IAM cannot express, and the only parameters the functions may set
/// in them: `UpdateAutoScalingGroup` switches a group's health check and nothing else (no
/// key names its zones, termination policies, desired capacity, …); `ModifyDBInstance` brings
/// backup settings to the policy and nothing else (no key names a master password or public
/// access); `ReplaceRoute` moves a route to a NAT gateway and nothing else (no key names the
/// target); `UpdateService` forces a deployment and adjusts the count, never the task
/// definition (new code); `UpdateAlias` points an alias at a version, as read.
pub const CODE_HELD_LIMITS: [(&str, &[&str]); 5] = [
    (
        "autoscaling:UpdateAutoScalingGroup",
        &[
            "AutoScalingGroupName",
            "HealthCheckType",
            "HealthCheckGracePeriod",
        ],
    ),
    (
        "rds:ModifyDBInstance",
        &[
            "DBInstanceIdentifier",
            "BackupRetentionPeriod",
            "PreferredBackupWindow",
            "ApplyImmediately",
        ],
    ),
    (
        "ec2:ReplaceRoute",
        &[
            "RouteTableId",
            "DestinationCidrBlock",
            "DestinationIpv6CidrBlock",
            "DestinationPrefixListId",
            "NatGatewayId",
        ],
    ),
    (
        "ecs:UpdateService",
        &["cluster", "service", "forceNewDeployment", "desiredCount"],
    ),
    (
        "lambda:UpdateAlias",
        &["FunctionName", "Name", "FunctionVersion", "RevisionId"],
    ),
];

/// One request a function made, as the emulator recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The access key id it was signed with: the function's binary.
    pub principal: String,
    /// `prefix:Operation`.
    pub operation: String,
    /// The names of the parameters it set.
    pub parameters: Vec<String>,
    /// What IAM authorizes for it; `Err` when the emulator could not say.
    pub authorizations: Result<Vec<Request>, String>,
}

impl Recorded {
    fn from_json(entry: &Value) -> Self {
        let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
        let operation = text("operation");
        let authorizations = if entry["unmodelled"] == true {
            Err(format!(
                "no authorization model for {operation}: add it to tests/emulator/request_authorizations.py"
            ))
        } else if let Some(error) = entry["error"].as_str() {
            Err(format!("the emulator could not model it: {error}"))
        } else {
            Ok(entry["authorizations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| Request {
                    action: a["action"].as_str().unwrap_or_default().to_owned(),
                    resource: a["resource"].as_str().unwrap_or_default().to_owned(),
                    context: a["context"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(key, values)| {
                            let values = values
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                                .collect();
                            (key.clone(), values)
                        })
                        .collect::<BTreeMap<_, _>>(),
                })
                .collect())
        };
        Recorded {
            principal: text("principal"),
            operation,
            parameters: entry["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            authorizations,
        }
    }

    /// The records in the emulator's answer.
    pub fn parse(body: &str) -> Vec<Recorded> {
        let entries: Value = serde_json::from_str(body).expect("the emulator's records as JSON");
        entries
            .as_array()
            .expect("a list of records")
            .iter()
            .map(Recorded::from_json)
            .collect()
    }
}

/// Each recorded request the template's policy for its function does not allow, once per
/// distinct request, with what of the policy does not allow it.
pub fn violations(template: &Value, stack: &Stack, records: &[Recorded]) -> Vec<String> {
    let policies = stack.function_statements(template);
    let mut found: Vec<String> = Vec::new();
    for record in records {
        let Some(function) = function_of_binary(template, &record.principal) else {
            found.push(format!(
                "{}: signed as {}, which names no function of the template",
                record.operation, record.principal
            ));
            continue;
        };
        let statements = &policies[&function];
        if let Some((_, allowed_parameters)) = CODE_HELD_LIMITS
            .iter()
            .find(|(op, _)| *op == record.operation)
        {
            let beyond: Vec<&String> = record
                .parameters
                .iter()
                .filter(|p| !allowed_parameters.contains(&p.as_str()))
                .collect();
            if !beyond.is_empty() {
                found.push(format!(
                    "{function}: {} sets {beyond:?}, beyond what the code may set ({allowed_parameters:?}): IAM cannot deny it",
                    record.operation
                ));
            }
        }
        match &record.authorizations {
            Err(why) => found.push(format!("{function}: {}: {why}", record.operation)),
            Ok(authorizations) => {
                for request in authorizations.iter().filter(|r| !allowed(statements, r)) {
                    found.push(format!(
                        "{function}: {} is denied {} on {} with {:?}: {}",
                        record.operation,
                        request.action,
                        request.resource,
                        request.context,
                        why_denied(statements, request)
                    ));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

//! An organization: `member.yaml` (what every member account holds) and the central stack's
//! bus. The member role may do what the layers may do at home, in its own account only, and
//! only the central stack's layer functions may assume it; the bus admits only the
//! organization's (or the listed accounts') alarm state changes; and nothing routes a member
//! account's alarm to a function unless asked.

use std::process::Command;

use serde_json::{Value, json};

use autoheal_tests::cfn::{ACCOUNT, PARTITION, Stack, as_list};
use autoheal_tests::iam::{Request, allowed, request, statement_applies};
use autoheal_tests::{template, template_file, tools_python, workspace};

use super::reference_stack;

/// A member account, an account outside the organization, and the organization.
const MEMBER: &str = "111122223333";
const STRANGER: &str = "444455556666";
const ORGANIZATION: &str = "o-a1b2c3d4e5";
/// A region of the member account other than the central stack's.
const MEMBER_REGION: &str = "eu-west-1";

/// `member.yaml` deployed in the member account's instance of the central region, for the
/// reference central stack (`autoheal` in ACCOUNT).
fn member_stack() -> Stack {
    Stack::new(&[("RestartProcessDocument", "autoheal-restart-process")])
        .in_account(MEMBER)
        .with_parameter("CentralAccountId", ACCOUNT)
        .with_parameter("CentralRegion", autoheal_tests::cfn::REGION)
}

/// The statements of a role of `member.yaml` as `stack` deploys them.
fn role_statements(member: &Value, stack: &Stack, role: &str) -> Vec<Value> {
    stack.role_statements(member, role)
}

fn arn_in(account: &str, region: &str, service: &str, resource: &str) -> String {
    format!("arn:{PARTITION}:{service}:{region}:{account}:{resource}")
}

#[test]
fn member_yaml_is_what_the_tool_writes_from_template_yaml() {
    let output = Command::new(tools_python())
        .arg(workspace().join("tools/member_template.py"))
        .arg("--check")
        .current_dir(workspace())
        .output()
        .expect("run tools/member_template.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every healing statement of every layer, and nothing of the stack's own (its table, its
/// follow-ups, its topic), is in the member role, under the same name.
#[test]
fn the_member_role_holds_every_layers_healing_statements_and_nothing_of_the_stack() {
    let central = template();
    let member = template_file("member.yaml");
    let held: Vec<String> = role_statements(&member, &member_stack(), "MemberRole")
        .iter()
        .map(|s| s["Sid"].as_str().expect("a Sid").to_owned())
        .collect();
    for (function, statements) in reference_stack().function_statements(&central) {
        if function == "DetectionFunction" {
            continue;
        }
        for statement in statements {
            let sid = statement["Sid"].as_str().expect("a Sid");
            let healing = !matches!(
                sid,
                "IncidentStateAndRecords"
                    | "ScheduleFollowUps"
                    | "HandTheSchedulerItsRole"
                    | "PublishRuns"
                    | "EncryptThroughSnsWithTheTopicsKey"
            );
            assert_eq!(
                held.iter().any(|h| h == sid),
                healing,
                "{function}: {sid} {} the member role",
                if healing {
                    "missing from"
                } else {
                    "must not be in"
                }
            );
        }
    }
}

/// The member role heals in its own account, in any region, as the layers do at home, and
/// keeps every opt-out; never in another account.
#[test]
fn the_member_role_heals_in_its_own_account_in_any_region_and_keeps_the_opt_outs() {
    let member = template_file("member.yaml");
    let statements = role_statements(&member, &member_stack(), "MemberRole");
    let disabled = |r: Request| r.resource_tag("autoheal:disabled", "true");
    let mut wrong = Vec::new();
    for region in [autoheal_tests::cfn::REGION, MEMBER_REGION] {
        let here = |service: &str, resource: &str| arn_in(MEMBER, region, service, resource);
        let instance = here("ec2", "instance/i-0123456789abcdef0");
        let group = here(
            "autoscaling",
            "autoScalingGroup:1a2b:autoScalingGroupName/web",
        );
        let service = here("ecs", "service/prod/api");
        let function = here("lambda", "function:orders");
        let database = here("rds", "db:orders-db");
        let target_group = here("elasticloadbalancing", "targetgroup/web/0123456789abcdef");
        let document = here("ssm", "document/autoheal-restart-process");
        let parameter = here("ssm", "parameter/autoheal/orders/breaker");
        let heals: Vec<(Request, &str)> = vec![
            (
                request("ec2:RebootInstances", &instance),
                "reboot an instance",
            ),
            (
                request("autoscaling:SetInstanceHealth", &group),
                "mark a member unhealthy",
            ),
            (
                request("ecs:UpdateService", &service),
                "force a new deployment",
            ),
            (
                request("lambda:UpdateAlias", &function),
                "roll back an alias",
            ),
            (
                request("rds:RebootDBInstance", &database),
                "reboot a database",
            ),
            (
                request("elasticloadbalancing:DeregisterTargets", &target_group),
                "deregister a target",
            ),
            (
                request("ssm:SendCommand", &instance),
                "restart on an instance",
            ),
            (
                request("ssm:PutParameter", &parameter),
                "open a circuit breaker",
            ),
        ];
        for (heal, why) in heals {
            if !allowed(&statements, &heal) {
                wrong.push(format!("{region}: {why} should be allowed"));
            }
            if allowed(&statements, &disabled(heal.clone())) {
                wrong.push(format!(
                    "{region}: {why} on an opted-out resource should be denied"
                ));
            }
            let elsewhere = Request {
                resource: heal.resource.replace(MEMBER, STRANGER),
                ..heal.clone()
            };
            if allowed(&statements, &elsewhere) {
                wrong.push(format!(
                    "{region}: {why} in another account should be denied"
                ));
            }
        }
        #[rustfmt::skip]
        let others: Vec<(Request, bool, &str)> = vec![
            (request("ssm:SendCommand", &document), true, "the account's restart document"),
            (request("ssm:SendCommand", &here("ssm", "document/AWS-RunShellScript")), false, "a shell"),
            (request("ec2:TerminateInstances", &instance), false, "terminate an instance"),
            (request("rds:DeleteDBInstance", &database), false, "delete a database"),
            (request("lambda:InvokeFunction", &here("lambda", "function:autoheal-cache-hook")), true, "the account's cache hook"),
            (request("lambda:InvokeFunction", &function), false, "any other function"),
            (request("cloudwatch:DescribeAlarms", &here("cloudwatch", "alarm:web-01-status")), true, "read the alarm where it lives"),
            (request("dynamodb:PutItem", &here("dynamodb", "table/autoheal-StateTable-1A2B3C")), false, "the state table"),
            (request("scheduler:CreateSchedule", &here("scheduler", "schedule/autoheal-follow-ups/x")), false, "a follow-up"),
            (request("sns:Publish", &here("sns", "autoheal-notifications")), false, "a notification"),
            (request("kms:Decrypt", &here("kms", "key/volumes")).with("kms:ViaService", &format!("ec2.{region}.amazonaws.com")), true, "a volume's key through EC2"),
            (request("kms:Decrypt", &here("kms", "key/volumes")), false, "a key directly"),
        ];
        for (request, expected, why) in others {
            if allowed(&statements, &request) != expected {
                wrong.push(format!(
                    "{region}: {why} should be {}",
                    if expected { "allowed" } else { "denied" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A trust policy's statement with its role as the resource (a trust policy names none).
fn on_its_role(statement: &Value, role: &str) -> Value {
    let mut statement = statement.clone();
    if statement["Resource"].is_null() {
        statement["Resource"] = json!(role);
    }
    statement
}

/// Whether a trust or resource policy lets `principal` (an ARN) of `account` make `request`.
fn admits(statements: &[Value], principal: &str, account: &str, request: &Request) -> bool {
    let names = |statement: &Value| {
        let named = &statement["Principal"];
        named == "*"
            || as_list(&named["AWS"]).iter().any(|p| {
                p == "*"
                    || p == account
                    || p == principal
                    || *p == json!(format!("arn:{PARTITION}:iam::{account}:root"))
            })
    };
    let request = request
        .clone()
        .with("aws:PrincipalArn", principal)
        .with("aws:PrincipalAccount", account);
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && names(s)
            && statement_applies(&on_its_role(s, &request.resource), &request)
    })
}

/// Only the central stack's five layer functions, in a session named after their run, may
/// assume the member role: not its detection function, not a person of the central account,
/// not the same role name in another account.
#[test]
fn only_the_central_stacks_layer_functions_may_assume_the_member_role() {
    let member = template_file("member.yaml");
    let stack = member_stack();
    let trust = as_list(
        &stack
            .concrete(
                &member,
                &member["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]
                    ["Statement"],
            )
            .expect("the trust policy"),
    );
    let role = |account: &str, name: &str| format!("arn:{PARTITION}:iam::{account}:role/{name}");
    let assume = |session: &str| {
        request(
            "sts:AssumeRole",
            &format!("arn:{PARTITION}:iam::{MEMBER}:role/autoheal-member"),
        )
        .with("sts:RoleSessionName", session)
    };
    for layer in [
        "Infrastructure",
        "Platform",
        "Application",
        "Data",
        "Network",
    ] {
        let function = role(
            ACCOUNT,
            &format!("autoheal-{layer}FunctionRole-1A2B3C4D5E6F"),
        );
        assert!(
            admits(
                &trust,
                &function,
                ACCOUNT,
                &assume("autoheal-0123456789abcdef")
            ),
            "{layer}"
        );
        assert!(
            !admits(&trust, &function, ACCOUNT, &assume("investigation")),
            "{layer}: a session not named after a run"
        );
        let elsewhere = role(
            STRANGER,
            &format!("autoheal-{layer}FunctionRole-1A2B3C4D5E6F"),
        );
        assert!(
            !admits(
                &trust,
                &elsewhere,
                STRANGER,
                &assume("autoheal-0123456789abcdef")
            ),
            "{layer}: the same role in another account"
        );
    }
    for (principal, why) in [
        (
            role(ACCOUNT, "autoheal-DetectionFunctionRole-1A2B3C4D5E6F"),
            "the detection function",
        ),
        (role(ACCOUNT, "Admin"), "a person of the central account"),
        (
            role(ACCOUNT, "staging-InfrastructureFunctionRole-1A2B3C4D5E6F"),
            "another stack's function",
        ),
    ] {
        assert!(
            !admits(
                &trust,
                &principal,
                ACCOUNT,
                &assume("autoheal-0123456789abcdef")
            ),
            "{why}"
        );
    }
}

/// The forwarding rule sends this account's ALARM and OK state changes to the central bus,
/// through a role that may put events on that bus and nothing else, and that only this
/// account's forwarding rules may use.
#[test]
fn the_member_forwards_its_alarms_to_the_central_bus_and_nothing_else() {
    let member = template_file("member.yaml");
    let stack = member_stack();
    let bus = format!(
        "arn:{PARTITION}:events:{}:{ACCOUNT}:event-bus/autoheal-alarms",
        autoheal_tests::cfn::REGION
    );
    let rule = stack
        .concrete(
            &member,
            &member["Resources"]["ForwardAlarmsRule"]["Properties"],
        )
        .expect("the rule");
    assert_eq!(rule["EventPattern"]["source"], json!(["aws.cloudwatch"]));
    assert_eq!(
        rule["EventPattern"]["detail-type"],
        json!(["CloudWatch Alarm State Change"])
    );
    assert_eq!(
        rule["EventPattern"]["detail"]["state"]["value"],
        json!(["ALARM", "OK"])
    );
    let targets = as_list(&rule["Targets"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], json!(bus));
    let role_arn = format!("arn:{PARTITION}:iam::{MEMBER}:role/autoheal-member-forwarder");
    assert_eq!(targets[0]["RoleArn"], json!(role_arn));

    let statements = role_statements(&member, &stack, "ForwardAlarmsRole");
    assert!(allowed(&statements, &request("events:PutEvents", &bus)));
    let other_bus = format!(
        "arn:{PARTITION}:events:{}:{ACCOUNT}:event-bus/default",
        autoheal_tests::cfn::REGION
    );
    assert!(!allowed(
        &statements,
        &request("events:PutEvents", &other_bus)
    ));
    assert!(!allowed(&statements, &request("events:PutRule", &bus)));
    let trust = as_list(
        &stack
            .concrete(
                &member,
                &member["Resources"]["ForwardAlarmsRole"]["Properties"]["AssumeRolePolicyDocument"]
                    ["Statement"],
            )
            .expect("the trust"),
    );
    assert_eq!(trust.len(), 1);
    assert_eq!(trust[0]["Principal"]["Service"], "events.amazonaws.com");
    let trust = [on_its_role(&trust[0], &role_arn)];
    let by_rule = |account: &str, name: &str| {
        request("sts:AssumeRole", &role_arn)
            .with("aws:SourceAccount", account)
            .with(
                "aws:SourceArn",
                &arn_in(account, MEMBER_REGION, "events", &format!("rule/{name}")),
            )
    };
    assert!(statement_applies(
        &trust[0],
        &by_rule(MEMBER, "autoheal-forward-alarms")
    ));
    assert!(!statement_applies(
        &trust[0],
        &by_rule(MEMBER, "someone-elses-rule")
    ));
    assert!(!statement_applies(
        &trust[0],
        &by_rule(STRANGER, "autoheal-forward-alarms")
    ));
}

/// In the central account's own instance nothing is created but a placeholder: its alarms
/// reach its functions on its default bus, and the central stack holds its document.
#[test]
fn the_central_accounts_own_instance_creates_nothing() {
    let member = template_file("member.yaml");
    let central = member_stack().in_account(ACCOUNT);
    let member_elsewhere = member_stack();
    let mut created = Vec::new();
    for (name, resource) in member["Resources"].as_object().expect("Resources") {
        let condition = resource["Condition"].as_str();
        if condition.is_none_or(|c| central.holds(&member, c)) {
            created.push(name.clone());
        }
        assert!(
            condition.is_none_or(|c| member_elsewhere.holds(&member, c)),
            "{name}: created in a member account's central-region instance"
        );
    }
    assert_eq!(created, ["Placeholder"]);
}

/// The central stack's bus, for the parameters given.
fn bus_policy(parameters: &[(&str, &str)]) -> Option<Vec<Value>> {
    let central = template();
    let stack = parameters.iter().fold(reference_stack(), |stack, (k, v)| {
        stack.with_parameter(k, v)
    });
    if !stack.holds(&central, "AcceptsMemberAlarms") {
        return None;
    }
    let bus = stack
        .concrete(
            &central,
            &central["Resources"]["MemberEventBus"]["Properties"],
        )
        .expect("the bus");
    Some(as_list(&bus["Policy"]["Statement"]))
}

/// A member account's forwarding role putting an event on the bus.
fn forwarded(
    account: &str,
    organization: Option<&str>,
    source: &str,
    detail_type: &str,
) -> (String, Request) {
    let bus = format!(
        "arn:{PARTITION}:events:{}:{ACCOUNT}:event-bus/autoheal-alarms",
        autoheal_tests::cfn::REGION
    );
    let mut request = request("events:PutEvents", &bus)
        .with("events:source", source)
        .with("events:detail-type", detail_type);
    if let Some(organization) = organization {
        request = request.with("aws:PrincipalOrgID", organization);
    }
    (
        format!("arn:{PARTITION}:iam::{account}:role/autoheal-member-forwarder"),
        request,
    )
}

#[test]
fn the_bus_admits_only_the_organizations_or_the_listed_accounts_alarm_state_changes() {
    const ALARM: &str = "CloudWatch Alarm State Change";
    assert_eq!(bus_policy(&[]), None, "one account: no bus");
    let admitted = |policy: &[Value],
                    account: &str,
                    organization: Option<&str>,
                    source: &str,
                    detail: &str| {
        let (principal, request) = forwarded(account, organization, source, detail);
        admits(policy, &principal, account, &request)
    };

    let organization = bus_policy(&[("OrganizationId", ORGANIZATION)]).expect("a bus");
    assert!(admitted(
        &organization,
        MEMBER,
        Some(ORGANIZATION),
        "aws.cloudwatch",
        ALARM
    ));
    assert!(
        !admitted(&organization, STRANGER, None, "aws.cloudwatch", ALARM),
        "outside the organization"
    );
    assert!(
        !admitted(
            &organization,
            STRANGER,
            Some("o-zzzzzzzzzz"),
            "aws.cloudwatch",
            ALARM
        ),
        "another organization"
    );
    assert!(
        !admitted(
            &organization,
            MEMBER,
            Some(ORGANIZATION),
            "acme.orders",
            ALARM
        ),
        "another source"
    );
    assert!(
        !admitted(
            &organization,
            MEMBER,
            Some(ORGANIZATION),
            "aws.cloudwatch",
            "CloudWatch Alarm Configuration Change"
        ),
        "another detail type"
    );

    let listed = bus_policy(&[("MemberAccounts", MEMBER)]).expect("a bus");
    assert!(admitted(&listed, MEMBER, None, "aws.cloudwatch", ALARM));
    assert!(
        !admitted(
            &listed,
            STRANGER,
            Some(ORGANIZATION),
            "aws.cloudwatch",
            ALARM
        ),
        "not listed"
    );

    let both = bus_policy(&[
        ("OrganizationId", ORGANIZATION),
        ("MemberAccounts", &format!("{MEMBER},{ACCOUNT}")),
    ])
    .expect("a bus");
    assert!(admitted(
        &both,
        MEMBER,
        Some(ORGANIZATION),
        "aws.cloudwatch",
        ALARM
    ));
    assert!(
        !admitted(&both, MEMBER, None, "aws.cloudwatch", ALARM),
        "listed, but no longer in the organization"
    );
    assert!(
        !admitted(&both, STRANGER, Some(ORGANIZATION), "aws.cloudwatch", ALARM),
        "in the organization, not listed"
    );
}

/// Without HealMemberAccounts nothing routes a member account's alarm to a function (the
/// functions cannot act there yet); with it, each layer's rule on the bus has its default
/// bus rule's pattern, for the allowed accounts and regions.
#[test]
fn member_alarms_reach_the_functions_only_when_asked_and_with_the_layers_patterns() {
    let central = template();
    let rules: Vec<(&String, &Value)> = central["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| {
            r["Type"] == "AWS::Events::Rule" && r["Properties"]["EventBusName"].is_object()
        })
        .collect();
    assert_eq!(rules.len(), 5, "one rule per layer on the bus");
    let organization = reference_stack().with_parameter("OrganizationId", ORGANIZATION);
    let asked = organization
        .clone()
        .with_parameter("HealMemberAccounts", "true");
    let listed = asked
        .clone()
        .with_parameter("MemberAccounts", MEMBER)
        .with_parameter("MemberRegions", &format!("us-east-1,{MEMBER_REGION}"));
    for (name, rule) in rules {
        assert_eq!(
            rule["Properties"]["EventBusName"],
            json!({ "Ref": "MemberEventBus" }),
            "{name}"
        );
        let condition = rule["Condition"].as_str().expect("a condition");
        assert!(
            !reference_stack().holds(&central, condition),
            "{name}: one account"
        );
        assert!(
            !organization.holds(&central, condition),
            "{name}: not asked"
        );
        assert!(asked.holds(&central, condition), "{name}: asked");
        let function = rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
            .as_str()
            .expect("the layer's function");
        let home = central["Resources"][function]["Properties"]["Events"]["AlarmStateChange"]["Properties"]["Pattern"].clone();
        let mut expected = reference_stack()
            .concrete(&central, &home)
            .expect("pattern");
        let pattern = |stack: &Stack| {
            stack
                .concrete(&central, &rule["Properties"]["EventPattern"])
                .expect("pattern")
        };

        let by_organization = pattern(&asked);
        expected.as_object_mut().expect("pattern").remove("account");
        expected["region"] = json!([autoheal_tests::cfn::REGION]);
        assert_eq!(
            by_organization, expected,
            "{name}: the organization's accounts, this region"
        );

        let by_list = pattern(&listed);
        expected["account"] = json!([MEMBER]);
        expected["region"] = json!(["us-east-1", MEMBER_REGION]);
        assert_eq!(by_list, expected, "{name}: the listed accounts and regions");
    }
    // The outputs give member.yaml its parameters.
    let outputs = asked
        .concrete(
            &central,
            &central["Outputs"]["MemberStackSetParameters"]["Value"],
        )
        .expect("output");
    let outputs = outputs.as_str().expect("text");
    for key in [
        "CentralAccountId",
        "CentralRegion",
        "CentralStackName",
        "MemberRoleName",
    ] {
        assert!(outputs.contains(&format!("ParameterKey={key},")), "{key}");
        let member = template_file("member.yaml");
        assert!(
            member["Parameters"][key].is_object(),
            "member.yaml takes {key}"
        );
    }
}

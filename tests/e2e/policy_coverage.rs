//! The check that every request a function makes in the tests is allowed by its own policy
//! (`tests/support/recorded.rs`, run as each emulator stops) catches what it must: a real
//! heal's requests, recorded by the emulator, pass the template's policy and fail it once a
//! statement they need is removed, naming the request and what is missing; a request nobody
//! modelled, and a parameter IAM cannot deny that the code must not set, fail too.

use chrono::Utc;
use serde_json::{Value, json};

use autoheal_core::{Settings, Verdict};
use autoheal_tests::cfn::shared_template;
use autoheal_tests::recorded::{Recorded, emulator_stack, violations};
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, ec2_alarm};

/// The template without the statement `sid` (wherever it stands).
fn without_statement(sid: &str) -> Value {
    let mut template = shared_template().clone();
    let mut removed = 0;
    for resource in template["Resources"]
        .as_object_mut()
        .expect("resources")
        .values_mut()
    {
        let managed = resource["Type"] == "AWS::IAM::ManagedPolicy";
        let properties = &mut resource["Properties"];
        let documents: Vec<&mut Value> = if managed {
            vec![&mut properties["PolicyDocument"]]
        } else {
            properties["Policies"]
                .as_array_mut()
                .map(|policies| policies.iter_mut().collect())
                .unwrap_or_default()
        };
        for document in documents {
            if let Some(statements) = document["Statement"].as_array_mut() {
                let before = statements.len();
                statements.retain(|s| s["Sid"] != sid);
                removed += before - statements.len();
            }
        }
    }
    assert!(removed > 0, "no statement {sid}");
    template
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_passes_its_policy_and_fails_it_once_a_statement_it_needs_is_removed() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = Fleet::new(&deployment.sdk)
        .standalone(&[("emulator:instance-status", "impaired")])
        .await;
    let engine = deployment.infrastructure(TestClock::at(Utc::now()), Settings::default());
    let outcome = engine
        .handle(ec2_alarm(&instance, "event-1"), "run-1")
        .await
        .expect("handled");
    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");

    let records = emulator.function_requests();
    let operations: Vec<&str> = records.iter().map(|r| r.operation.as_str()).collect();
    for expected in [
        "ec2:RebootInstances",
        "dynamodb:TransactWriteItems",
        "sns:Publish",
        "scheduler:CreateSchedule",
    ] {
        assert!(operations.contains(&expected), "{expected}: {operations:?}");
    }
    assert!(
        records
            .iter()
            .all(|r| r.principal == "autoheal-infrastructure"),
        "only the function's requests are recorded, not the test's fixtures: {operations:?}"
    );
    let stack = emulator_stack();
    assert_eq!(
        violations(shared_template(), &stack, &records),
        Vec::<String>::new()
    );

    let found = violations(
        &without_statement("RebootOrStopStartInstancesThatDidNotOptOut"),
        &stack,
        &records,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "InfrastructureFunction: ec2:RebootInstances is denied ec2:RebootInstances on arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
        )) && found[0].ends_with("no statement allows ec2:RebootInstances"),
        "{found:#?}"
    );

    // A statement that stays but no longer holds: the state's writes, without the table.
    let found = violations(
        &without_statement("IncidentStateAndRecords"),
        &stack,
        &records,
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("dynamodb:TransactWriteItems is denied dynamodb:PutItem")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|v| v.contains("no statement allows dynamodb:")),
        "{found:#?}"
    );
}

/// A condition the request does not meet is named with the request's own value.
#[test]
fn a_condition_that_fails_is_named_with_the_requests_value() {
    let records = Recorded::parse(
        &json!([{
            "principal": "autoheal-infrastructure",
            "operation": "ec2:CreateVolume",
            "parameters": ["AvailabilityZone", "SnapshotId", "TagSpecifications", "VolumeType"],
            "authorizations": [{
                "action": "ec2:CreateVolume",
                "resource": "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0",
                "context": { "aws:ResourceTag/team": ["payments"] }
            }]
        }])
        .to_string(),
    );
    let found = violations(shared_template(), &emulator_stack(), &records);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("CreateVolumesOnlyFromAutohealsSnapshots's condition StringEquals aws:ResourceTag/autoheal:managed")
            && found[0].contains("(the request's: absent)"),
        "a volume from a foreign snapshot: {found:#?}"
    );
}

#[test]
fn an_unmodelled_request_and_a_parameter_iam_cannot_deny_fail_the_check() {
    let records = Recorded::parse(
        &json!([
            {
                "principal": "autoheal-data",
                "operation": "rds:ModifyDBInstance",
                "parameters": ["DBInstanceIdentifier", "MasterUserPassword", "PubliclyAccessible"],
                "authorizations": [{
                    "action": "rds:ModifyDBInstance",
                    "resource": "arn:aws:rds:us-east-1:123456789012:db:orders-db",
                    "context": {}
                }]
            },
            {
                "principal": "autoheal-network",
                "operation": "sts:GetCallerIdentity",
                "parameters": [],
                "unmodelled": true
            },
            {
                "principal": "someone-else",
                "operation": "ec2:DescribeInstances",
                "parameters": [],
                "authorizations": [{ "action": "ec2:DescribeInstances", "resource": "*", "context": {} }]
            }
        ])
        .to_string(),
    );
    let found = violations(shared_template(), &emulator_stack(), &records);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found.iter().any(|v| v.starts_with("DataFunction: rds:ModifyDBInstance sets [\"MasterUserPassword\", \"PubliclyAccessible\"]")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(
            |v| v.starts_with("NetworkFunction: sts:GetCallerIdentity: no authorization model")
        ),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("someone-else, which names no function")),
        "{found:#?}"
    );
}

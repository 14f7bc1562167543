//! Fixtures of the application layer in the emulator.

use aws_config::SdkConfig;
use serde_json::Value;

use crate::{Fleet, sample_event};

/// The sample event of `rule` (`alarm` or `ok`), with event id `id` and its resource
/// dimension (`Service` or `InstanceId`, whichever the sample carries) set to `resource`.
pub fn application_event(rule: &str, state: &str, resource: &str, id: &str) -> Value {
    let mut event = sample_event(&format!("{rule}.{state}.json"));
    event["id"] = Value::from(id);
    let dimensions =
        &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"];
    let key = ["Service", "InstanceId"]
        .into_iter()
        .find(|key| dimensions.get(*key).is_some())
        .unwrap_or_else(|| panic!("{rule}.{state}.json names no Service or InstanceId"));
    dimensions[key] = Value::from(resource);
    event
}

/// The ALARM sample of `rule`, aimed at `resource`.
pub fn application_alarm(rule: &str, resource: &str, id: &str) -> Value {
    application_event(rule, "alarm", resource, id)
}

/// The OK sample of `rule`, aimed at `resource`.
pub fn application_ok(rule: &str, resource: &str, id: &str) -> Value {
    application_event(rule, "ok", resource, id)
}

/// The application's parameters in the emulator's Parameter Store.
#[derive(Debug, Clone)]
pub struct AppParameters {
    pub ssm: aws_sdk_ssm::Client,
}

impl AppParameters {
    pub fn new(sdk: &SdkConfig) -> Self {
        AppParameters {
            ssm: aws_sdk_ssm::Client::new(sdk),
        }
    }

    /// Creates a String parameter holding `value` as JSON, with `tags`.
    pub async fn create(&self, name: &str, value: &Value, tags: &[(&str, &str)]) {
        let mut put = self
            .ssm
            .put_parameter()
            .name(name)
            .value(value.to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String);
        for (key, value) in tags {
            put = put.tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build()
                    .expect("a tag"),
            );
        }
        put.send().await.expect("put parameter");
    }

    /// The parameter's value as JSON, and its version.
    pub async fn read(&self, name: &str) -> (Value, i64) {
        let parameter = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .expect("get parameter")
            .parameter
            .expect("a parameter");
        let value = serde_json::from_str(parameter.value().expect("a value")).expect("JSON");
        (value, parameter.version)
    }
}

/// A running standalone instance with `tags`. A `managed` one has an instance profile, which
/// is what makes the emulator's Systems Manager list it as online (see
/// `tests/emulator/moto_ssm_instance_information.py`), as the SSM Agent does in AWS.
pub async fn app_instance(sdk: &SdkConfig, tags: &[(&str, &str)], managed: bool) -> String {
    let fleet = Fleet::new(sdk);
    let instance = fleet.standalone(tags).await;
    if managed {
        let profile = format!("{instance}-ssm");
        aws_sdk_iam::Client::new(sdk)
            .create_instance_profile()
            .instance_profile_name(&profile)
            .send()
            .await
            .expect("instance profile");
        fleet
            .ec2
            .associate_iam_instance_profile()
            .instance_id(&instance)
            .iam_instance_profile(
                aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                    .name(&profile)
                    .build(),
            )
            .send()
            .await
            .expect("associate instance profile");
    }
    instance
}

/// The name of the restart document the tests create, as the stack does (`RestartProcessDocument`).
pub const RESTART_DOCUMENT: &str = "autoheal-restart-process";

/// A document of someone else's that other commands on a busy instance run.
pub const OTHER_DOCUMENT: &str = "routine-runbook";

/// The emulator's additions a restart needs: managed instances, `ListCommands` in pages as
/// Systems Manager serves it, and `SendCommand` refused unless its document exists and its
/// parameters are the document's, within its patterns (see
/// `tests/emulator/moto_ssm_instance_information.py`, `moto_ssm_list_commands.py` and
/// `moto_ssm_send_command_documents.py`).
pub const RUN_COMMAND_SHIMS: [&str; 3] = [
    "moto_ssm_instance_information.py",
    "moto_ssm_list_commands.py",
    "moto_ssm_send_command_documents.py",
];

/// The restart document's content as the stack creates it (`RestartProcessDocument` in
/// `template.yaml`, for the tests' stack), as JSON.
pub fn restart_document_content() -> Value {
    let template = crate::cfn::shared_template();
    let content = &template["Resources"]["RestartProcessDocument"]["Properties"]["Content"];
    crate::recorded::emulator_stack()
        .concrete(template, content)
        .expect("the restart document's content")
}

/// Creates, as a deployment has them, the stack's restart document and a runbook of someone
/// else's (what other commands on an instance run).
pub async fn create_run_command_documents(sdk: &SdkConfig) {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let runbook = serde_json::json!({
        "schemaVersion": "2.2",
        "description": "a team's routine runbook",
        "parameters": { "commands": { "type": "StringList" } },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "run",
            "inputs": { "runCommand": "{{ commands }}" }
        }]
    });
    for (name, content) in [
        (RESTART_DOCUMENT, restart_document_content()),
        (OTHER_DOCUMENT, runbook),
    ] {
        ssm.create_document()
            .name(name)
            .document_type(aws_sdk_ssm::types::DocumentType::Command)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
            .content(content.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("create document {name}: {e:?}"));
    }
}

/// The Run Commands sent to `instance`, every page of them.
pub async fn commands_sent(sdk: &SdkConfig, instance: &str) -> Vec<aws_sdk_ssm::types::Command> {
    let mut commands = Vec::new();
    let mut pages = aws_sdk_ssm::Client::new(sdk)
        .list_commands()
        .instance_id(instance)
        .into_paginator()
        .items()
        .send();
    while let Some(command) = pages.next().await {
        commands.push(command.expect("list commands"));
    }
    commands
}

/// Sends `count` commands of someone else's to `instance` (a busy instance: its own agents,
/// patching, a person's runbooks).
pub async fn send_other_commands(sdk: &SdkConfig, instance: &str, count: usize) {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    for i in 0..count {
        ssm.send_command()
            .instance_ids(instance)
            .document_name(OTHER_DOCUMENT)
            .parameters("commands", vec![format!("echo routine {i}")])
            .comment(format!("routine {i}"))
            .send()
            .await
            .expect("send a command");
    }
}

/// Writes `value` over the parameter, as a person would in the console.
pub async fn person_writes(ssm: &aws_sdk_ssm::Client, name: &str, value: &Value) {
    ssm.put_parameter()
        .name(name)
        .value(value.to_string())
        .overwrite(true)
        .send()
        .await
        .expect("a person's change");
}

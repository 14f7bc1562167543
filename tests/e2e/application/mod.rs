//! The application layer's rules against the emulator: `circuit-breaker-healing`,
//! `connection-pool-healing` (in `pools`), `graceful-degradation-healing` (Parameter Store)
//! and `memory-leak-healing` (EC2 and Systems Manager Run Command, in `process`).

mod pools;
mod process;

use std::time::Duration;

use autoheal_application::ApplicationHealer;
use autoheal_core::{
    AlarmEvent, Assessment, HealOutcome, HealRequest, Healer, HealingRecord, HealingStatus, Layer,
    Outcome, RuleSet, SkipReason, SystemClock, Verdict, WaitReason,
};
use autoheal_tests::application::{
    AppParameters, application_alarm, application_ok, person_writes,
};
use autoheal_tests::faults::{Fault, FaultProxy};
use autoheal_tests::{Deployment, Emulator, TestEngine, ec2_alarm};
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

/// A rule's ALARM as a healer is handed it, for tests that call the healer directly.
struct Alarmed {
    rules: RuleSet,
    event: AlarmEvent,
    rule: &'static str,
    resource: String,
}

impl Alarmed {
    fn new(rule: &'static str, resource: &str) -> Self {
        Alarmed {
            rules: RuleSet::shipped().expect("shipped rules"),
            event: AlarmEvent::from_value(application_alarm(rule, resource, "e1"))
                .expect("an alarm"),
            rule,
            resource: resource.to_owned(),
        }
    }

    /// Attempt `attempt` of the incident, with `token`.
    fn attempt<'a>(&'a self, attempt: u32, token: &'a str) -> HealRequest<'a> {
        HealRequest {
            attempt,
            ..autoheal_tests::first_attempt(
                self.rules.get(self.rule).expect("the rule"),
                &self.resource,
                &self.event,
                token,
            )
        }
    }
}

/// The healer's skip, or a panic naming what it did instead.
fn skipped(outcome: HealOutcome) -> (SkipReason, String) {
    match outcome {
        HealOutcome::Skipped { reason, summary } => (reason, summary),
        other => panic!("expected a skip: {other:?}"),
    }
}

/// An engine whose reads of `ssm:GetParameter` are answered 2 s late, and a person's write
/// of `theirs` over `name` half a second into the first of them: a change between
/// autoheal's read and its write. Runs `act` with the healer behind the proxy.
async fn with_a_person_writing_meanwhile<F, Fut>(
    emulator: &Emulator,
    name: &str,
    theirs: &Value,
    act: F,
) -> Result<HealOutcome, autoheal_core::HealError>
where
    F: FnOnce(ApplicationHealer) -> Fut,
    Fut: std::future::Future<Output = Result<HealOutcome, autoheal_core::HealError>>,
{
    let direct = emulator.sdk().await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    // autoheal's read of the parameter reaches the service at once, and its answer comes late.
    proxy.inject(
        "ssm:GetParameter",
        Fault::Slow(Duration::from_secs(2)),
        Some(1),
    );
    let healer = ApplicationHealer::new(&proxy.sdk().await);
    let person = aws_sdk_ssm::Client::new(&direct);
    let (outcome, ()) = tokio::join!(act(healer), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        person_writes(&person, name, theirs).await;
    });
    outcome
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_writing_the_breaker_while_autoheal_half_opens_it_wins() {
    let emulator = Emulator::start();
    let parameters = AppParameters::new(&emulator.sdk().await);
    let name = "/autoheal/orders-api/circuit-breaker";
    parameters
        .create(name, &json!({"state": "open"}), &[])
        .await;
    let alarm = Alarmed::new(BREAKER, "orders-api");
    // The person forces the breaker open while the dependency is repaired.
    let theirs = json!({"state": "open", "changed_by": "alice", "note": "inventory down"});

    let outcome = with_a_person_writing_meanwhile(&emulator, name, &theirs, |healer| async move {
        healer
            .heal(alarm.attempt(1, "autoheal-0123456789abcdef00000001"))
            .await
    })
    .await;

    let (reason, summary) = skipped(outcome.expect("no error"));
    assert_eq!(reason, SkipReason::Unsafe);
    assert!(
        summary.contains("changed by someone else (version 2)") && summary.contains("stays"),
        "{summary}"
    );
    // autoheal's write (version 3) landed on theirs, which is put back (version 4).
    assert_eq!(parameters.read(name).await, (theirs, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_a_person_holds_open_is_waited_for_and_never_half_opened() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let parameters = AppParameters::new(&deployment.sdk);
    let name = "/autoheal/orders-api/circuit-breaker";
    let held = json!({"state": "open", "hold": "alice: inventory maintenance until 14:00"});
    parameters.create(name, &held, &[]).await;
    let healer = ApplicationHealer::new(&deployment.sdk);
    let alarm = Alarmed::new(BREAKER, "orders-api");
    let request = alarm.attempt(1, "autoheal-0123456789abcdef00000001");

    let assessment = healer.assess(request).await.expect("assessed");
    let Assessment::Wait(wait) = assessment else {
        panic!("a person's hold is waited for: {assessment:?}");
    };
    assert_eq!(wait.reason, WaitReason::OperatorHold);
    assert!(wait.summary.contains("inventory maintenance"), "{wait:?}");
    // Should the attempt come anyway (the hold set after the look), it changes nothing.
    let (reason, _) = skipped(healer.heal(request).await.expect("no error"));
    assert_eq!(reason, SkipReason::OperatorHold);
    assert_eq!(parameters.read(name).await, (held, 1));

    // The person lifts the hold: the attempt may go ahead.
    person_writes(&parameters.ssm, name, &json!({"state": "open"})).await;
    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        Assessment::Proceed
    );
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

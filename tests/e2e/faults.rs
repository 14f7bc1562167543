//! AWS faults between the functions and AWS (a fault-injecting proxy in front of the
//! emulator, the functions' own SDK configuration): retries get past transient faults; what
//! they cannot get past is a `failed` record naming the step, and a notification, never a false
//! `completed`; without the state store nothing is done; an outage in the middle of an action
//! is finished by the attempt's own check, with nothing done twice.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use autoheal_aws::HandlerError;
use autoheal_core::{Clock, HealingStatus, Layer, Settings, SkipReason, Verdict};
use autoheal_tests::application::{AppParameters, application_alarm, application_ok};
use autoheal_tests::data::{DataStores, data_alarm};
use autoheal_tests::faults::{Fault, FaultProxy};
use autoheal_tests::network::{NAT64, NatFixture, nat_alarm};
use autoheal_tests::platform::{lambda_event, lambda_function, live_version};
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, TestEngine, ec2_alarm};

const SYSTEM: &str = "emulator:system-status";
const MUTATIONS: [&str; 3] = [
    "ec2:StopInstances",
    "ec2:StartInstances",
    "ec2:RebootInstances",
];

/// The deployment as the fixtures see it (straight to the emulator), the proxy, and the same
/// deployment as the functions see it (through the proxy, with their SDK configuration).
async fn through_proxy(emulator: &Emulator) -> (Deployment, FaultProxy, Deployment) {
    let direct = Deployment::bootstrap(emulator).await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    let proxied = Deployment {
        sdk: proxy.sdk().await,
        ..direct.clone()
    };
    (direct, proxy, proxied)
}

/// Handles `event` once and checks what a heal that cannot be completed must leave: a
/// `failed` run, stored as such, and one notification saying so. Returns the run's error.
async fn failed_and_told<C: Clock>(
    engine: &TestEngine<C>,
    event: Value,
    direct: &Deployment,
    queue: &str,
    (layer, rule): (&str, &str),
) -> String {
    let outcome = engine.handle(event, "run-1").await.expect("handled");
    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Failed, "{record:?}");
    assert_eq!(direct.only_record().await, record, "stored as it ran");
    let published = direct.only_notification(queue).await;
    published.assert_about(layer, rule, "failed");
    let error = record.error.expect("an error");
    assert_eq!(published.record["error"], error.as_str());
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_on_every_service_are_retried_and_the_heal_completes_once() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let queue = direct.subscribe_queue("operators").await;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = proxied.infrastructure(TestClock::at(Utc::now()), Settings::default());
    proxy.inject("dynamodb:TransactWriteItems", Fault::Unavailable, Some(1));
    proxy.inject("ec2:DescribeInstanceStatus", Fault::Reset, Some(1));
    proxy.inject("ec2:DescribeInstances", Fault::InternalError, Some(1));
    proxy.inject("ec2:StopInstances", Fault::Throttle, Some(2));
    proxy.inject(
        "ec2:StartInstances",
        Fault::Slow(Duration::from_secs(2)),
        Some(1),
    );
    proxy.inject("scheduler:*", Fault::Throttle, Some(1));
    proxy.inject("sns:Publish", Fault::Throttle, Some(1));
    // The run's last write (the final record and the lease's release, one transaction),
    // after the claim's retry.
    proxy.inject_after("dynamodb:TransactWriteItems", 1, Fault::Reset, Some(1));

    let outcome = engine
        .handle(ec2_alarm(&instance, "e-transient"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
    assert_eq!(
        proxy.count("ec2:StopInstances"),
        3,
        "two throttled, one done"
    );
    assert_eq!(proxy.count("ec2:StartInstances"), 1);
    assert_eq!(
        proxy.faulted(),
        9,
        "every fault met once: {:?}",
        proxy.requests()
    );
    let stored = direct.only_record().await;
    assert_eq!(stored.status, HealingStatus::Completed);
    direct.only_notification(&queue).await.assert_about(
        "infrastructure",
        "ec2-instance-healing",
        "completed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_hangs_is_cut_off_and_retried() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = proxied.infrastructure(TestClock::at(Utc::now()), Settings::default());
    // Longer than an attempt may take (20 s): the attempt is abandoned, the retry answers.
    proxy.inject(
        "ec2:DescribeInstances",
        Fault::Slow(Duration::from_secs(25)),
        Some(1),
    );

    let started = std::time::Instant::now();
    let outcome = engine
        .handle(ec2_alarm(&instance, "e-hang"), "run-1")
        .await
        .expect("handled");

    assert!(started.elapsed() < Duration::from_secs(60));
    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert!(
        proxy.count("ec2:DescribeInstances") >= 2,
        "the hung read was tried again: {:?}",
        proxy.requests()
    );
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_keeps_failing_is_a_failed_record_naming_it_and_a_notification() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let queue = direct.subscribe_queue("operators").await;
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = proxied.infrastructure(TestClock::at(Utc::now()), Settings::default());
    // The stop fails before anything changed: a start that fails instead leaves the instance
    // stopped, and is carried on in follow-ups (see `ec2_healing`), never a failed run.
    proxy.inject("ec2:StopInstances", Fault::Unavailable, None);

    let error = failed_and_told(
        &engine,
        ec2_alarm(&instance, "e-failing"),
        &direct,
        &queue,
        ("infrastructure", "ec2-instance-healing"),
    )
    .await;

    assert!(
        error.contains(&format!("{instance} was not stopped: StopInstances")),
        "the step that failed, and that nothing happened: {error}"
    );
    assert_eq!(proxy.count("ec2:StopInstances"), 3, "three attempts");
    assert_eq!(proxy.count("ec2:StartInstances"), 0);
    assert!(fleet.history(&instance).await.is_empty());
    assert_eq!(
        fleet.instance_state(&instance).await,
        Some(aws_sdk_ec2::types::InstanceStateName::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_state_store_nothing_is_done_and_the_event_can_be_delivered_again() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = proxied.infrastructure(TestClock::at(Utc::now()), Settings::default());
    let event = ec2_alarm(&instance, "e-no-store");
    for fault in [
        Fault::Unavailable,
        Fault::Throttle,
        Fault::Reset,
        Fault::Gone,
    ] {
        proxy.heal();
        proxy.inject("dynamodb:*", fault, None);

        let error = engine
            .handle(event.clone(), "run-1")
            .await
            .expect_err("no state store");

        assert!(error.is_retryable(), "{fault:?}: {error}");
        assert_eq!(
            HandlerError::Engine(error).error_type(),
            "autoheal.StateStoreUnavailable",
            "{fault:?}"
        );
        for mutation in MUTATIONS {
            assert_eq!(
                proxy.count(mutation),
                0,
                "{fault:?}: never act without a claim"
            );
        }
        assert_eq!(engine.healer.calls(), 0);
    }
    assert!(fleet.history(&instance).await.is_empty());
    assert_eq!(direct.item_count().await, 0);

    // Lambda's retry (or the dead-letter queue's redrive) delivers it again: it acts once.
    proxy.heal();
    let outcome = engine.handle(event, "run-2").await.expect("handled");
    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
}

/// The check that verifies an attempt is scheduled before its claim: while EventBridge
/// Scheduler cannot be reached, the event fails with a retryable error, the instance is not
/// touched and nothing is stored; delivered again once it answers, the event heals, followed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scheduler_nothing_is_done_and_the_event_can_be_delivered_again() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let engine = proxied.infrastructure(TestClock::at(Utc::now()), Settings::default());
    let event = ec2_alarm(&instance, "e-no-scheduler");
    proxy.inject("scheduler:*", Fault::Unavailable, None);

    let error = engine
        .handle(event.clone(), "run-1")
        .await
        .expect_err("no follow-up can be scheduled");

    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("CreateSchedule"), "{error}");
    for mutation in MUTATIONS {
        assert_eq!(proxy.count(mutation), 0, "never act without a follow-up");
    }
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(direct.item_count().await, 0, "nothing is written");
    assert!(direct.follow_ups().await.is_empty());

    proxy.heal();
    let outcome = engine.handle(event, "run-2").await.expect("handled");
    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
    let scheduled = direct.follow_ups().await;
    assert_eq!(scheduled.len(), 1, "the attempt's check");
    assert_eq!(
        scheduled[0].payload["detail"]["incident_id"],
        "e-no-scheduler"
    );
}

/// A degradation flag that cannot be switched back when its alarm clears (Parameter Store
/// refusing every write) is switched back by the revert's own follow-up, once Parameter Store
/// answers again: each retry reads the alarm back from CloudWatch and the state from the
/// table, and the retry left over after the success finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_that_cannot_be_switched_back_is_switched_back_by_its_own_follow_up() {
    let emulator = Emulator::start();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let parameters = AppParameters::new(&direct.sdk);
    let flag = "/autoheal/checkout-api/degradation";
    parameters
        .create(flag, &json!({"degraded": false, "shed": ["reports"]}), &[])
        .await;
    let clock = TestClock::at(Utc::now());
    let engine = proxied.layer_with(Layer::Application, clock.clone(), Settings::default());
    let rule = "graceful-degradation-healing";
    let alarm = application_alarm(rule, "checkout-api", "e-slow");
    let alarm_name = alarm["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned();
    direct.set_alarm(&alarm_name, "ALARM").await;
    let acted = engine.handle(alarm, "run-1").await.expect("handled");
    assert_eq!(acted.decision, Verdict::Act, "{acted:?}");
    assert_eq!(parameters.read(flag).await.0["degraded"], true);

    // The alarm clears, and Parameter Store refuses every write.
    direct.set_alarm(&alarm_name, "OK").await;
    proxy.inject("ssm:PutParameter", Fault::Unavailable, None);
    let ok = engine
        .handle(application_ok(rule, "checkout-api", "ok-1"), "run-ok")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Revert, "{ok:?}");
    let failed = ok.record.expect("a revert record");
    assert_eq!(failed.status, HealingStatus::Failed, "{failed:?}");
    assert!(failed.details.contains_key("revert_retry_at"), "{failed:?}");
    assert_eq!(parameters.read(flag).await.0["degraded"], true);

    let retry = |run: &'static str| {
        let direct = direct.clone();
        let engine = &engine;
        let clock = &clock;
        async move {
            let schedule = direct
                .follow_ups()
                .await
                .into_iter()
                .find(|schedule| schedule.payload["detail"]["kind"] == "revert")
                .expect("a revert retry is scheduled");
            direct.fire(engine, clock, schedule, run).await
        }
    };
    // Its first retry fails too, and schedules the next.
    let first = retry("retry-1").await;
    assert_eq!(first.decision, Verdict::Revert, "{first:?}");
    assert_eq!(
        first.record.expect("a record").status,
        HealingStatus::Failed
    );
    assert_eq!(parameters.read(flag).await.0["degraded"], true);

    // Parameter Store answers again: the next retry switches the flag back.
    proxy.heal();
    let second = retry("retry-2").await;
    assert_eq!(second.decision, Verdict::Revert, "{second:?}");
    assert_eq!(
        second.record.expect("a record").status,
        HealingStatus::Completed
    );
    let (value, version) = parameters.read(flag).await;
    assert_eq!(value["degraded"], false);
    assert_eq!(value["shed"], json!(["reports"]));

    // The retry the successful run scheduled finds nothing left to put back.
    let leftover = retry("retry-3").await;
    assert_eq!(leftover.decision, Verdict::Ignore, "{leftover:?}");
    assert_eq!(leftover.reason, Some(SkipReason::Duplicate));
    assert_eq!(parameters.read(flag).await.1, version, "written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_in_the_middle_of_an_action_is_finished_by_its_check_without_doing_anything_twice()
 {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let fleet = Fleet::new(&direct.sdk);
    let instance = fleet.standalone(&[(SYSTEM, "impaired")]).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap());
    let engine = proxied.infrastructure(clock.clone(), Settings::default());
    proxy.go_away_after("ec2:StopInstances");

    let error = engine
        .handle(ec2_alarm(&instance, "e-outage"), "run-1")
        .await
        .expect_err("the record cannot be written while AWS is gone");

    assert!(error.is_retryable(), "{error}");
    assert_eq!(fleet.history(&instance).await, ["stop"]);
    let records = direct
        .store()
        .recent_records(10, clock.now())
        .await
        .expect("records");
    assert!(
        records.iter().all(|r| r.status != HealingStatus::Completed),
        "never a false completed: {records:#?}"
    );

    // AWS is back; the check the claim scheduled before acting resumes the same attempt.
    proxy.heal();
    let mut finished = None;
    for check in 1..=6 {
        let outcome = direct
            .fire_next(&engine, &clock, &format!("check-{check}"))
            .await
            .expect("a check is scheduled");
        if let Some(record) = outcome.record.as_ref()
            && record.status == HealingStatus::Completed
        {
            finished = Some(record.clone());
            break;
        }
    }
    let record = finished.expect("the attempt completed");
    assert_eq!(record.attempt, 1, "the same attempt, not a new one");
    assert_eq!(fleet.history(&instance).await, ["stop", "start"]);
    assert_eq!(proxy.count("ec2:StopInstances"), 1, "never stopped twice");
    assert_eq!(proxy.count("ec2:StartInstances"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_write_that_keeps_failing_leaves_the_breaker_as_it_was() {
    let emulator = Emulator::start();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let queue = direct.subscribe_queue("operators").await;
    let parameters = AppParameters::new(&direct.sdk);
    let name = "/autoheal/orders-api/circuit-breaker";
    let open = json!({"state": "open", "dependency": "inventory"});
    parameters.create(name, &open, &[]).await;
    let engine = proxied.layer(Layer::Application);
    proxy.inject("ssm:PutParameter", Fault::Throttle, None);

    let error = failed_and_told(
        &engine,
        application_alarm("circuit-breaker-healing", "orders-api", "e1"),
        &direct,
        &queue,
        ("application", "circuit-breaker-healing"),
    )
    .await;

    assert!(error.contains("PutParameter"), "{error}");
    assert!(
        error.contains("Throttling"),
        "the service's own code: {error}"
    );
    assert_eq!(parameters.read(name).await, (open, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_cannot_be_moved_is_reported_with_the_routes_already_moved() {
    let emulator = Emulator::start();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let queue = direct.subscribe_queue("operators").await;
    let nat = NatFixture::with_standby(&direct.sdk, &[]).await;
    let before = nat.nat_routes().await;
    let engine = proxied.layer(Layer::Network);
    // The first route moves; the second keeps failing.
    proxy.inject_after("ec2:ReplaceRoute", 1, Fault::Unavailable, None);

    let error = failed_and_told(
        &engine,
        nat_alarm(&nat.failing, "nat-alarm"),
        &direct,
        &queue,
        ("network", "nat-route-healing"),
    )
    .await;

    assert!(error.contains("ReplaceRoute"), "{error}");
    assert!(error.contains("already moved"), "{error}");
    let after = nat.nat_routes().await;
    let moved: Vec<_> = after
        .iter()
        .filter(|(_, via)| *via == nat.standby)
        .collect();
    assert_eq!(moved.len(), 1, "exactly the first route moved: {after:?}");
    assert_eq!(before.len(), 2);
    let (destination, _) = moved[0];
    assert!(
        error.contains(destination.as_str()),
        "the error names the moved route {destination}: {error}"
    );
    let other = if destination == NAT64 {
        "0.0.0.0/0"
    } else {
        NAT64
    };
    assert!(
        after
            .iter()
            .any(|(d, via)| d == other && *via == nat.failing),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_that_cannot_be_updated_keeps_its_version_and_the_failure_is_told() {
    let emulator = Emulator::start();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let queue = direct.subscribe_queue("operators").await;
    let lambda = lambda_function(&direct.sdk, "orders-processor", &[]).await;
    let engine = proxied.layer(Layer::Platform);
    // UpdateAlias is `PUT /…/functions/NAME/aliases/ALIAS`.
    proxy.inject("lambda:PUT *", Fault::Throttle, None);

    let error = failed_and_told(
        &engine,
        lambda_event("alarm", "orders-processor", "fn-1"),
        &direct,
        &queue,
        ("platform", "lambda-function-healing"),
    )
    .await;

    assert!(
        error.starts_with("UpdateAlias: ThrottlingException"),
        "{error}"
    );
    assert_eq!(proxy.count("lambda:PUT *"), 3, "three attempts");
    assert_eq!(live_version(&lambda, "orders-processor").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_hook_that_cannot_be_reached_is_a_failed_repair() {
    let emulator = Emulator::start();
    emulator.lambda_without_docker();
    let (direct, proxy, proxied) = through_proxy(&emulator).await;
    let queue = direct.subscribe_queue("operators").await;
    DataStores::new(&direct.sdk)
        .cache_cluster("sessions-cache-001", &[])
        .await;
    let engine = proxied.layer(Layer::Data);
    // Invoke is `POST /…/functions/NAME/invocations`.
    proxy.inject("lambda:POST *", Fault::Reset, None);

    let error = failed_and_told(
        &engine,
        data_alarm("cache-invalidation-healing", "sessions-cache-001", "e1"),
        &direct,
        &queue,
        ("data", "cache-invalidation-healing"),
    )
    .await;

    assert!(error.starts_with("Invoke: "), "{error}");
    assert_eq!(proxy.count("lambda:POST *"), 3, "three attempts");
}

/// The proxy itself: a denial reads as each protocol's services write it (the SDK finds its
/// code and message), and an injection keyed on a request's body hits that request only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_denies_in_each_protocols_words_and_picks_requests_by_their_body() {
    use aws_sdk_sts::error::ProvideErrorMetadata;

    let emulator = Emulator::start();
    let proxy = FaultProxy::start(&emulator.url()).await;
    let sdk = proxy.sdk().await;
    let denied_role = "arn:aws:iam::222222222222:role/autoheal-member";
    proxy.inject_when(
        "sts:AssumeRole",
        &format!("RoleArn={denied_role}"),
        Fault::Denied,
        None,
    );
    let sts = aws_sdk_sts::Client::new(&sdk);
    let assume = |role: &str| {
        sts.assume_role()
            .role_arn(role)
            .role_session_name("autoheal-proxy")
            .send()
    };
    let denied = assume(denied_role).await.expect_err("denied");
    assert_eq!(
        denied.raw_response().map(|r| r.status().as_u16()),
        Some(403)
    );
    assert_eq!(denied.code(), Some("AccessDenied"), "{denied:?}");
    assert!(
        denied
            .message()
            .is_some_and(|m| m.ends_with("is not authorized to perform: sts:AssumeRole")),
        "{denied:?}"
    );
    assume("arn:aws:iam::111111111111:role/autoheal-member")
        .await
        .expect("another account's role is let through");
    assert_eq!(proxy.count("sts:AssumeRole"), 2);
    assert!(
        proxy.bodies("sts:AssumeRole")[0].contains(&format!("RoleArn={denied_role}")),
        "the log keeps bodies percent-decoded: {:?}",
        proxy.bodies("sts:AssumeRole")
    );

    proxy.inject("ec2:DescribeInstances", Fault::Denied, Some(1));
    proxy.inject("dynamodb:ListTables", Fault::Denied, Some(1));
    proxy.inject("monitoring:DescribeAlarms", Fault::Denied, Some(1));
    proxy.inject("lambda:GET *", Fault::Denied, Some(1));
    proxy.inject("route53:GET *", Fault::Denied, Some(1));
    let ec2 = aws_sdk_ec2::Client::new(&sdk)
        .describe_instances()
        .send()
        .await
        .expect_err("denied");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .expect_err("denied");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk)
        .describe_alarms()
        .send()
        .await
        .expect_err("denied");
    let lambda = aws_sdk_lambda::Client::new(&sdk)
        .list_functions()
        .send()
        .await
        .expect_err("denied");
    let route53 = aws_sdk_route53::Client::new(&sdk)
        .list_hosted_zones()
        .send()
        .await
        .expect_err("denied");
    let codes = [
        ("ec2 query", ec2.code(), ec2.message()),
        ("json", dynamodb.code(), dynamodb.message()),
        ("cbor", cloudwatch.code(), cloudwatch.message()),
        ("rest-json", lambda.code(), lambda.message()),
        ("rest-xml", route53.code(), route53.message()),
    ];
    let expected = [
        "UnauthorizedOperation",
        "AccessDeniedException",
        "AccessDeniedException",
        "AccessDeniedException",
        "AccessDenied",
    ];
    for ((protocol, code, message), expected) in codes.into_iter().zip(expected) {
        assert_eq!(code, Some(expected), "{protocol}");
        assert!(
            message.is_some_and(|m| m.contains("not authorized to perform")),
            "{protocol}: {message:?}"
        );
    }
    assert_eq!(proxy.faulted(), 6, "each denial met once, nothing retried");
}

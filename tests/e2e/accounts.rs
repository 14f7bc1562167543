//! One deployment heals in every account and region of an organization (the emulator keeps
//! accounts apart, and acts in the account whose role was assumed through STS): the
//! function's dispatcher, as `autoheal_aws::run` wires it, acts in the account and region an
//! event names, through the member role there, and nowhere else; a role that cannot be
//! assumed fails its own event alone; an account or region not served is refused before
//! anything is read, written or called.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::Value;

use autoheal_aws::HandlerError;
use autoheal_core::{Clock, HealingStatus, Layer, Limit, RunPhase, Settings, SkipReason, Verdict};
use autoheal_tests::accounts::{
    HOME, MEMBER_B, MEMBER_C, MEMBER_ROLE, OTHER_REGION, STRANGER, TestDispatcher, organization,
    place, placed, sdk_in,
};
use autoheal_tests::cfn::REGION;
use autoheal_tests::faults::{Fault, FaultProxy};
use autoheal_tests::{Deployment, Emulator, Fleet, TestClock, ec2_alarm, rule_event};

const SYSTEM: &str = "emulator:system-status";
/// Every account names its web server's alarm the same (one naming scheme, one StackSet).
const ALARM: &str = "web-system-status-check-failed";

/// `instance`'s status-check alarm event as CloudWatch in `account` and `region` sends it.
fn web_alarm(instance: &str, id: &str, account: &str, region: &str) -> Value {
    let mut event = ec2_alarm(instance, id);
    event["detail"]["alarmName"] = Value::from(ALARM);
    placed(event, account, region)
}

fn healing_the_organization() -> Settings {
    Settings {
        reach: organization(),
        ..Settings::default()
    }
}

/// A web server with an impaired host in `account` and `region`: its fleet (the fixtures'
/// view of that place) and its id.
async fn web_server(deployment: &Deployment, account: &str, region: &str) -> (Fleet, String) {
    let fleet = Fleet::new(&sdk_in(&deployment.sdk, account, region).await);
    let instance = fleet
        .standalone(&[(SYSTEM, "impaired"), ("Name", "web")])
        .await;
    (fleet, instance)
}

/// What a heal would change on an instance: its state and its tags (the status-check shim
/// records every stop, start and reboot in `emulator:history`).
async fn as_it_is(fleet: &Fleet, instance: &str) -> (Option<String>, BTreeMap<String, String>) {
    let read = fleet.instance(instance).await;
    let state = read
        .state()
        .and_then(|state| state.name())
        .map(|name| name.as_str().to_owned());
    let tags = read
        .tags()
        .iter()
        .map(|tag| {
            (
                tag.key().unwrap_or_default().to_owned(),
                tag.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (state, tags)
}

/// The deployment as the fixtures see it (straight to the emulator), a proxy in front of the
/// emulator that logs every request, and the function's dispatcher through it (its alarms
/// fired straight to the emulator, so that the log holds the function's requests only).
async fn through_proxy(emulator: &Emulator) -> (Deployment, FaultProxy, TestDispatcher<TestClock>) {
    let direct = Deployment::bootstrap(emulator).await;
    let proxy = FaultProxy::start(&emulator.url()).await;
    let proxied = Deployment {
        sdk: proxy.sdk().await,
        ..direct.clone()
    };
    let dispatcher = proxied
        .dispatcher(
            Layer::Infrastructure,
            TestClock::at(Utc::now()),
            healing_the_organization(),
        )
        .firing_through(&direct.sdk);
    (direct, proxy, dispatcher)
}

/// The member role's ARN in `account`.
fn member_role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/{MEMBER_ROLE}")
}

/// How many times the function assumed the member role in `account`.
fn assumed_in(proxy: &FaultProxy, account: &str) -> usize {
    let role = format!("RoleArn={}", member_role(account));
    proxy
        .bodies("sts:AssumeRole")
        .iter()
        .filter(|body| body.contains(&role))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_a_member_account_heals_its_instance_there_and_nowhere_else() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (central, central_web) = web_server(&deployment, HOME, REGION).await;
    let (member_b, web_b) = web_server(&deployment, MEMBER_B, REGION).await;
    let (member_c, web_c) = web_server(&deployment, MEMBER_C, REGION).await;
    let central_before = as_it_is(&central, &central_web).await;
    let member_c_before = as_it_is(&member_c, &web_c).await;
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        TestClock::at(Utc::now()),
        healing_the_organization(),
    );

    let outcome = dispatcher
        .handle(web_alarm(&web_b, "b-1", MEMBER_B, REGION), "run-b")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.account.as_deref(), Some(MEMBER_B));
    assert_eq!(record.region.as_deref(), Some(REGION));
    assert_eq!(
        record.role_session.as_deref(),
        Some("autoheal-run-b"),
        "the session CloudTrail names B's stop and start with"
    );
    assert_eq!(deployment.only_record().await, record, "stored centrally");
    assert_eq!(member_b.history(&web_b).await, ["stop", "start"]);
    assert_eq!(
        member_b.instance_state(&web_b).await,
        Some(aws_sdk_ec2::types::InstanceStateName::Running)
    );
    assert_eq!(as_it_is(&central, &central_web).await, central_before);
    assert_eq!(as_it_is(&member_c, &web_c).await, member_c_before);
    assert!(central.history(&central_web).await.is_empty());
    assert!(member_c.history(&web_c).await.is_empty());
    // B's healer acted; the central account's never looked.
    assert_eq!(
        dispatcher
            .unsent
            .engine_in(&place(MEMBER_B, REGION))
            .healer
            .calls(),
        1
    );
    assert_eq!(dispatcher.unsent.home().healer.calls(), 0);
    assert_eq!(dispatcher.unsent.home().healer.assessed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_or_region_not_served_is_refused_with_nothing_read_written_or_called() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, dispatcher) = through_proxy(&emulator).await;
    let (stranger, stranger_web) = web_server(&direct, STRANGER, REGION).await;
    let (member_b, far_web) = web_server(&direct, MEMBER_B, "ap-south-1").await;
    let before = (
        as_it_is(&stranger, &stranger_web).await,
        as_it_is(&member_b, &far_web).await,
    );
    let cases = [
        (
            web_alarm(&stranger_web, "s-1", STRANGER, REGION),
            "account 333333333333 is not one this deployment heals",
        ),
        (
            web_alarm(&far_web, "b-far", MEMBER_B, "ap-south-1"),
            "region ap-south-1 is not one this deployment heals",
        ),
    ];
    for (event, says) in cases {
        // The alarm is real where it fired: only where it fired is not served.
        dispatcher.fire(&event).await;
        proxy.clear_log();

        let outcome = dispatcher
            .unsent
            .handle(event, "run-out")
            .await
            .expect("handled");

        assert_eq!(outcome.decision, Verdict::Skip, "{outcome:?}");
        assert_eq!(outcome.reason, Some(SkipReason::OutOfReach), "{outcome:?}");
        assert!(
            outcome.detail.as_deref().is_some_and(|d| d.contains(says)),
            "{outcome:?}"
        );
        assert!(outcome.record.is_none(), "{outcome:?}");
        assert_eq!(
            proxy.requests(),
            Vec::<String>::new(),
            "no STS, EC2, CloudWatch or DynamoDB request"
        );
    }
    assert_eq!(direct.item_count().await, 0, "nothing written");
    assert_eq!(
        (
            as_it_is(&stranger, &stranger_web).await,
            as_it_is(&member_b, &far_web).await
        ),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_role_that_cannot_be_assumed_fails_its_event_alone() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, dispatcher) = through_proxy(&emulator).await;
    let (member_b, web_b) = web_server(&direct, MEMBER_B, REGION).await;
    let (member_c, web_c) = web_server(&direct, MEMBER_C, REGION).await;
    let member_c_before = as_it_is(&member_c, &web_c).await;
    // C's trust does not admit this stack (member.yaml not deployed there, say).
    proxy.inject_when(
        "sts:AssumeRole",
        &format!("RoleArn={}", member_role(MEMBER_C)),
        Fault::Denied,
        None,
    );

    // One burst: C's event and B's at once.
    let (in_c, in_b) = tokio::join!(
        dispatcher.handle(web_alarm(&web_c, "c-1", MEMBER_C, REGION), "run-c"),
        dispatcher.handle(web_alarm(&web_b, "b-1", MEMBER_B, REGION), "run-b"),
    );

    let error = in_c.expect_err("C's role was not assumed");
    assert!(matches!(error, HandlerError::MemberRole(_)), "{error:?}");
    assert_eq!(error.error_type(), "autoheal.MemberRoleNotAssumed");
    let message = error.to_string();
    for says in [
        format!("cannot assume the member role {}", member_role(MEMBER_C)),
        format!("in account {MEMBER_C}"),
        "AssumeRole: AccessDenied".to_owned(),
        format!("check that member.yaml is deployed to account {MEMBER_C}"),
        format!("MemberRoleName is `{MEMBER_ROLE}`"),
    ] {
        assert!(message.contains(&says), "{says}: {message}");
    }
    assert!(!message.contains('\n'), "{message}");
    let healed = in_b.expect("B's event handled");
    let record = healed.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.account.as_deref(), Some(MEMBER_B));
    assert_eq!(member_b.history(&web_b).await, ["stop", "start"]);
    assert_eq!(as_it_is(&member_c, &web_c).await, member_c_before);
    assert_eq!(direct.only_record().await, record, "nothing written for C");
    assert_eq!(
        assumed_in(&proxy, MEMBER_C),
        1,
        "AccessDenied is not retried"
    );
    assert_eq!(assumed_in(&proxy, MEMBER_B), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_another_region_acts_with_that_regions_clients() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    // The web server exists in the second region only.
    let (member_b, web_b) = web_server(&deployment, MEMBER_B, OTHER_REGION).await;
    let home_region_of_b = Fleet::new(&sdk_in(&deployment.sdk, MEMBER_B, REGION).await);
    assert_eq!(home_region_of_b.running_instance_count().await, 0);
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        TestClock::at(Utc::now()),
        healing_the_organization(),
    );

    let outcome = dispatcher
        .handle(web_alarm(&web_b, "b-eu", MEMBER_B, OTHER_REGION), "run-eu")
        .await
        .expect("handled");

    let record = outcome.record.expect("a record");
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.region.as_deref(), Some(OTHER_REGION));
    assert_eq!(record.account.as_deref(), Some(MEMBER_B));
    assert_eq!(member_b.history(&web_b).await, ["stop", "start"]);
    let engine = dispatcher.unsent.engine_in(&place(MEMBER_B, OTHER_REGION));
    assert_eq!(engine.healer.calls(), 1);
    assert_eq!(home_region_of_b.running_instance_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follow_ups_of_a_member_accounts_incident_read_its_alarm_there() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (member_b, web_b) = web_server(&deployment, MEMBER_B, REGION).await;
    let (_, central_web) = web_server(&deployment, HOME, REGION).await;
    let clock = TestClock::at(Utc::now());
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        clock.clone(),
        healing_the_organization(),
    );
    dispatcher
        .handle(web_alarm(&web_b, "b-1", MEMBER_B, REGION), "run-b")
        .await
        .expect("handled");
    assert_eq!(member_b.history(&web_b).await, ["stop", "start"]);
    // B's alarm is OK now; the central account's alarm of the same name is in ALARM (its
    // own web server): a check that read the wrong one would heal again.
    let in_b = aws_sdk_cloudwatch::Client::new(&sdk_in(&deployment.sdk, MEMBER_B, REGION).await);
    in_b.set_alarm_state()
        .alarm_name(ALARM)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("recovered")
        .send()
        .await
        .expect("B's alarm OK");
    dispatcher
        .fire(&web_alarm(&central_web, "a-1", HOME, REGION))
        .await;

    let mut outcomes = Vec::new();
    for check in ["check-1", "check-2"] {
        let due = deployment.follow_ups().await;
        let next = due
            .into_iter()
            .next()
            .expect("a follow-up scheduled centrally");
        assert_eq!(
            next.payload["detail"]["alarm"]["account"], MEMBER_B,
            "{:#}",
            next.payload
        );
        clock.set(next.due_at.max(clock.now()));
        outcomes.push(
            dispatcher
                .unsent
                .handle(next.payload, check)
                .await
                .expect("follow-up handled"),
        );
        deployment.delete_follow_up(&next.name).await;
    }

    assert_eq!(outcomes[0].decision, Verdict::Recheck, "{:?}", outcomes[0]);
    assert_eq!(outcomes[1].decision, Verdict::Resolve, "{:?}", outcomes[1]);
    let resolved = outcomes[1].record.as_ref().expect("a record");
    assert_eq!(resolved.phase, RunPhase::Verify);
    assert_eq!(resolved.account.as_deref(), Some(MEMBER_B));
    assert_eq!(
        resolved.role_session.as_deref(),
        Some("autoheal-run-b"),
        "the session still in use, assumed for the run that healed"
    );
    assert!(deployment.follow_ups().await.is_empty());
    assert_eq!(
        member_b.history(&web_b).await,
        ["stop", "start"],
        "healed once"
    );
    assert_eq!(dispatcher.unsent.home().healer.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_credentials_serve_its_next_events() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let (direct, proxy, dispatcher) = through_proxy(&emulator).await;
    let (member_b, first) = web_server(&direct, MEMBER_B, REGION).await;
    let second = member_b
        .standalone(&[(SYSTEM, "impaired"), ("Name", "api")])
        .await;

    let mut sessions = Vec::new();
    for (instance, run) in [(first.as_str(), "run-1"), (second.as_str(), "run-2")] {
        let mut event = ec2_alarm(instance, run);
        event = placed(event, MEMBER_B, REGION);
        let outcome = dispatcher.handle(event, run).await.expect("handled");
        let record = outcome.record.expect("a record");
        assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
        sessions.push(record.role_session);
    }

    assert_eq!(
        assumed_in(&proxy, MEMBER_B),
        1,
        "{:?}",
        proxy.bodies("sts:AssumeRole")
    );
    assert_eq!(
        sessions,
        [
            Some("autoheal-run-1".to_owned()),
            Some("autoheal-run-1".to_owned())
        ]
    );
    assert_eq!(proxy.count("sts:*"), 1, "{:?}", proxy.requests());
    for instance in [&first, &second] {
        assert_eq!(member_b.history(instance).await, ["stop", "start"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_budget_spent_defers_that_accounts_heals_only() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (member_b, first) = web_server(&deployment, MEMBER_B, REGION).await;
    let second = member_b
        .standalone(&[(SYSTEM, "impaired"), ("Name", "api")])
        .await;
    let (member_c, web_c) = web_server(&deployment, MEMBER_C, REGION).await;
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        TestClock::at(Utc::now()),
        Settings {
            account_budget: Some(Limit {
                limit: 1,
                window_seconds: 900,
            }),
            ..healing_the_organization()
        },
    );

    let mut outcomes = Vec::new();
    for (instance, id, account) in [
        (first.as_str(), "b-1", MEMBER_B),
        (second.as_str(), "b-2", MEMBER_B),
        (web_c.as_str(), "c-1", MEMBER_C),
    ] {
        let mut event = ec2_alarm(instance, id);
        event["detail"]["alarmName"] = Value::from(format!("{instance}-status"));
        let event = placed(event, account, REGION);
        outcomes.push(dispatcher.handle(event, id).await.expect("handled"));
    }

    assert_eq!(outcomes[0].decision, Verdict::Act, "{:?}", outcomes[0]);
    assert_eq!(
        outcomes[1].reason,
        Some(SkipReason::Budget),
        "{:?}",
        outcomes[1]
    );
    assert!(
        outcomes[1]
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains(&format!("account {MEMBER_B}"))),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2].decision, Verdict::Act, "C's budget is its own");
    assert_eq!(member_b.history(&first).await, ["stop", "start"]);
    assert!(member_b.history(&second).await.is_empty(), "deferred");
    assert_eq!(member_c.history(&web_c).await, ["stop", "start"]);
}

/// The command line, as an operator runs it against the central account.
fn autoheal_cli(url: &str, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(autoheal_tests::binary("autoheal"))
        .args(args)
        .args(["--endpoint-url", url])
        .env_remove("AUTOHEAL_TOPIC_ARN")
        .env_remove("AUTOHEAL_TABLE_NAME")
        .env_remove("AUTOHEAL_SCOPE")
        .env_remove("AUTOHEAL_ALARM_SCOPE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run autoheal");
    assert!(
        output.status.success(),
        "autoheal {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "autoheal {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_reads_resets_and_surveys_one_account() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let url = emulator.url();
    let deployment = Deployment::bootstrap(&emulator).await;
    let (_, web_b) = web_server(&deployment, MEMBER_B, REGION).await;
    let (_, central_web) = web_server(&deployment, HOME, REGION).await;
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        TestClock::at(Utc::now()),
        healing_the_organization(),
    );
    for (event, run) in [
        (web_alarm(&web_b, "b-1", MEMBER_B, REGION), "run-b"),
        (web_alarm(&central_web, "a-1", HOME, REGION), "run-a"),
    ] {
        let outcome = dispatcher.handle(event, run).await.expect("handled");
        assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    }

    let history = autoheal_cli(&url, &["history", "--account", MEMBER_B]);
    let timelines = history.as_array().expect("timelines");
    assert_eq!(timelines.len(), 1, "{history:#}");
    assert_eq!(timelines[0]["resource_id"], web_b.as_str());
    assert_eq!(timelines[0]["account"], MEMBER_B);
    assert_eq!(timelines[0]["region"], REGION);
    let elsewhere = autoheal_cli(&url, &["history", "--region", OTHER_REGION]);
    assert_eq!(elsewhere, serde_json::json!([]));

    let stats = autoheal_cli(&url, &["stats", "--account", MEMBER_B]);
    assert_eq!(stats["total"], 1, "{stats:#}");
    let all = autoheal_cli(&url, &["stats"]);
    assert_eq!(all["total"], 2, "{all:#}");
    assert_eq!(all["per_account"][MEMBER_B]["completed"], 1, "{all:#}");
    assert_eq!(all["per_account"][HOME]["completed"], 1, "{all:#}");

    // B's incident closes; the central account's, on another instance, stays open.
    let reset = autoheal_cli(
        &url,
        &[
            "reset",
            "--rule",
            "ec2-instance-healing",
            "--resource",
            &web_b,
            "--account",
            MEMBER_B,
        ],
    );
    assert_eq!(reset["phase"], "reset", "{reset:#}");
    assert_eq!(reset["account"], MEMBER_B);
    let history = autoheal_cli(&url, &["history"]);
    let states: BTreeMap<String, String> = history
        .as_array()
        .expect("timelines")
        .iter()
        .map(|timeline| {
            (
                timeline["account"].as_str().unwrap_or_default().to_owned(),
                timeline["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            (MEMBER_B.to_owned(), "reset".to_owned()),
            (HOME.to_owned(), "open".to_owned()),
        ])
    );

    // B surveyed through a role the operator may assume there (an audit role; the member
    // role admits only the functions): its instance, and only its.
    let coverage = autoheal_cli(
        &url,
        &[
            "coverage",
            "--scope",
            "all",
            "--account",
            MEMBER_B,
            "--role-name",
            "organization-audit",
            "--output",
            "json",
        ],
    );
    let surveyed: Vec<&str> = coverage["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["resource"].as_str())
        .collect();
    let instances: Vec<&str> = surveyed
        .iter()
        .copied()
        .filter(|resource| resource.starts_with("i-"))
        .collect();
    assert_eq!(instances, [web_b.as_str()], "{coverage:#}");
    assert!(!surveyed.contains(&central_web.as_str()), "{surveyed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_out_in_a_member_account_is_put_back_there_when_its_alarm_is_ok() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    // One naming scheme across accounts: a group of the same name in B and at home.
    let member_b = Fleet::new(&sdk_in(&deployment.sdk, MEMBER_B, REGION).await);
    let (group, _) = member_b.auto_scaling_group("web-asg").await;
    let central = Fleet::new(&deployment.sdk);
    let (central_group, _) = central.auto_scaling_group("web-asg").await;
    assert_eq!(group, central_group);
    let dispatcher = deployment.dispatcher(
        Layer::Infrastructure,
        TestClock::at(Utc::now()),
        healing_the_organization(),
    );
    let capacity = |state: &str, id: &str| {
        let event = rule_event(
            "asg-capacity-healing",
            state,
            id,
            "AutoScalingGroupName",
            &group,
        );
        placed(event, MEMBER_B, REGION)
    };

    let healed = dispatcher
        .handle(capacity("alarm", "b-alarm"), "run-alarm")
        .await
        .expect("handled");
    assert_eq!(healed.decision, Verdict::Act, "{healed:?}");
    assert_eq!(member_b.group(&group).await.desired_capacity(), Some(3));
    assert_eq!(central.group(&group).await.desired_capacity(), Some(1));

    let put_back = dispatcher
        .handle(capacity("ok", "b-ok"), "run-ok")
        .await
        .expect("handled");

    assert_eq!(put_back.decision, Verdict::Revert, "{put_back:?}");
    let record = put_back.record.expect("a revert record");
    assert_eq!(record.phase, RunPhase::Revert);
    assert_eq!(record.status, HealingStatus::Completed, "{record:?}");
    assert_eq!(record.account.as_deref(), Some(MEMBER_B));
    assert_eq!(member_b.group(&group).await.desired_capacity(), Some(1));
    assert_eq!(central.group(&group).await.desired_capacity(), Some(1));
}

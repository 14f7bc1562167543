//! `lambda-function-healing` (`rollback-lambda-alias`): a rollback to the version that was live
//! on the alias before (read from CloudTrail's record of the alias), once per incident, only
//! when the alarm names the alias, never over CodeDeploy or a person's shift or rollback.

use autoheal_core::{HealOutcome, Healer, HealingStatus, SkipReason, Verdict, WaitReason};
use autoheal_platform::PlatformHealer;
use autoheal_tests::platform::{
    codedeploy_moves_alias, create_alias, function_tags, lambda_event, lambda_event_with,
    lambda_function, lambda_function_with_versions, live_version, move_alias,
};
use autoheal_tests::{Deployment, Emulator};

use super::{alarm, gone, notified, platform, shipped_rule, skipped, stored_record, waits};

const FUNCTION: &str = "orders-processor";
const TAG: &str = "autoheal:rollback:live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_alias_rolls_back_to_the_previous_version() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let lambda = lambda_function(&deployment.sdk, FUNCTION, &[]).await;
    let engine = platform(&deployment);

    let outcome = engine
        .handle(lambda_event("alarm", FUNCTION, "fn-1"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Act, "{outcome:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
    let record = stored_record(&deployment, HealingStatus::Completed).await;
    assert_eq!(
        record.details.get("from_version").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        record.details.get("to_version").map(String::as_str),
        Some("1")
    );
    let notice = notified(&deployment, &queue, "lambda-function-healing", "completed").await;
    assert_eq!(notice["details"]["to_version"], "1");

    let ok = engine
        .handle(lambda_event("ok", FUNCTION, "fn-2"), "run-2")
        .await
        .expect("handled");
    assert_eq!(ok.decision, Verdict::Recovering, "{ok:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
}

/// The story of a stale event: releases 1, 2 and 3 went live in turn; the alarm that fired
/// for release 2 is OK again under release 3, and its OK was handled. Release 2's ALARM,
/// held 40 minutes in Lambda's queue, arrives now: CloudWatch is read first, the event is
/// stale, and `live` stays on 3 (it is never rolled back to the broken 2, nor to 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_alarm_for_a_release_already_fixed_leaves_the_alias_alone() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 3, &[]).await;
    create_alias(&lambda, FUNCTION, "live", "1").await;
    move_alias(&lambda, FUNCTION, "live", "2").await;
    move_alias(&lambda, FUNCTION, "live", "3").await;
    let engine = platform(&deployment);
    let ok = engine
        .handle(lambda_event("ok", FUNCTION, "fn-ok"), "run-1")
        .await
        .expect("handled");
    assert_eq!(ok.reason, Some(SkipReason::NoOpenIncident), "{ok:?}");

    // Delivered as it was sent, 40 minutes ago: the alarm is OK now.
    let late = engine
        .unsent
        .handle(lambda_event("alarm", FUNCTION, "fn-release-2"), "run-2")
        .await
        .expect("handled");

    assert_eq!(late.decision, Verdict::Ignore, "{late:?}");
    assert_eq!(late.reason, Some(SkipReason::Stale), "{late:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "3");
    assert_eq!(deployment.item_count().await, 0, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_function_tagged_disabled_keeps_its_alias() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("operators").await;
    let lambda = lambda_function(&deployment.sdk, FUNCTION, &[("autoheal:disabled", "true")]).await;

    let outcome = platform(&deployment)
        .handle(lambda_event("alarm", FUNCTION, "fn-opt-out"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::OptedOut), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    assert_eq!(record.skip_reason, Some(SkipReason::OptedOut));
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");
    notified(&deployment, &queue, "lambda-function-healing", "skipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_created_on_its_version_has_nothing_to_roll_back_to() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 2, &[]).await;
    // Version 2 was published, but the alias was only ever on 1.
    create_alias(&lambda, FUNCTION, "live", "1").await;

    let outcome = platform(&deployment)
        .handle(lambda_event("alarm", FUNCTION, "fn-first"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.reason, Some(SkipReason::NotNeeded), "{outcome:?}");
    let record = stored_record(&deployment, HealingStatus::Skipped).await;
    let summary = record.summary.expect("a summary");
    assert!(
        summary.contains("no version was live on it before"),
        "{summary}"
    );
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_goes_to_the_version_live_before_not_to_one_only_published() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 3, &[]).await;
    // Release 2 was published (for staging, say) but never deployed to `live`: 1, then 3.
    create_alias(&lambda, FUNCTION, "live", "1").await;
    move_alias(&lambda, FUNCTION, "live", "3").await;
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-attempt-1");

    let HealOutcome::Healed {
        summary, details, ..
    } = PlatformHealer::new(&deployment.sdk)
        .heal(request)
        .await
        .expect("healed")
    else {
        panic!("rolled back");
    };

    assert_eq!(live_version(&lambda, FUNCTION).await, "1", "{summary}");
    assert_eq!(details["from_version"], "3");
    assert_eq!(details["to_version"], "1");
    // The rollback is recorded on the function: from, to, attempt, incident.
    let tags = function_tags(&lambda, FUNCTION).await;
    assert_eq!(tags.get(TAG).map(String::as_str), Some("3 1 1 incident-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_rolls_back_once_and_never_walks_back_a_second_version() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 3, &[]).await;
    create_alias(&lambda, FUNCTION, "live", "1").await;
    move_alias(&lambda, FUNCTION, "live", "2").await;
    move_alias(&lambda, FUNCTION, "live", "3").await;
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let healer = PlatformHealer::new(&deployment.sdk);
    let attempt = |number: u32, incident: &'static str, token: &'static str| {
        let mut request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, token);
        request.attempt = number;
        request.incident_id = incident;
        request
    };

    // Attempt 1: 3 → 2.
    let first = healer
        .heal(attempt(1, "incident-1", "autoheal-a1"))
        .await
        .expect("healed");
    assert!(matches!(first, HealOutcome::Healed { .. }), "{first:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");

    // The same attempt again (its invocation died after the rollback): reported, not redone.
    let again = healer
        .heal(attempt(1, "incident-1", "autoheal-a1"))
        .await
        .expect("healed");
    assert_eq!(again, first);
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");

    // Attempt 2 of the same incident, the alarm still firing: never 2 → 1.
    let summary = skipped(
        healer
            .heal(attempt(2, "incident-1", "autoheal-a2"))
            .await
            .expect("healed"),
        SkipReason::Unsafe,
    );
    assert!(summary.contains("already rolled alias live"), "{summary}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");

    // A later incident on the version autoheal restored: left to a person too.
    let summary = skipped(
        healer
            .heal(attempt(1, "incident-2", "autoheal-b1"))
            .await
            .expect("healed"),
        SkipReason::Unsafe,
    );
    assert!(
        summary.contains("which autoheal restored over 3"),
        "{summary}"
    );
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");

    // Once a new release is deployed, its incident rolls back to the version live before it.
    move_alias(&lambda, FUNCTION, "live", "3").await;
    let rolled = healer
        .heal(attempt(1, "incident-3", "autoheal-c1"))
        .await
        .expect("healed");
    assert!(matches!(rolled, HealOutcome::Healed { .. }), "{rolled:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_on_another_alias_a_version_or_the_executed_version_changes_nothing() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function(&deployment.sdk, FUNCTION, &[]).await;
    create_alias(&lambda, FUNCTION, "staging", "2").await;
    let rule = shipped_rule("lambda-function-healing");
    let healer = PlatformHealer::new(&deployment.sdk);

    for (dimensions, named) in [
        (
            vec![("Resource", "orders-processor:staging")],
            "orders-processor:staging",
        ),
        (
            vec![("Resource", "orders-processor:2")],
            "orders-processor:2",
        ),
        (
            vec![
                ("Resource", "orders-processor:live"),
                ("ExecutedVersion", "2"),
            ],
            "ExecutedVersion=2",
        ),
    ] {
        let event = alarm(lambda_event_with("alarm", FUNCTION, "e1", &dimensions));
        let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-x1");
        let summary = skipped(
            healer.heal(request).await.expect("healed"),
            SkipReason::Unsafe,
        );
        assert!(summary.contains(named), "{summary}");
        assert_eq!(live_version(&lambda, FUNCTION).await, "2", "{named}");
        assert!(!function_tags(&lambda, FUNCTION).await.contains_key(TAG));
    }

    // The alarm on `live` itself is `live`'s.
    let event = alarm(lambda_event_with(
        "alarm",
        FUNCTION,
        "e1",
        &[("Resource", "orders-processor:live")],
    ));
    let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-x1");
    let outcome = healer.heal(request).await.expect("healed");
    assert!(matches!(outcome, HealOutcome::Healed { .. }), "{outcome:?}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_codedeploy_deployed_all_at_once_is_left_to_codedeploy() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 2, &[]).await;
    create_alias(&lambda, FUNCTION, "live", "1").await;
    // An all-at-once deployment: no routing configuration is left on the alias.
    codedeploy_moves_alias(&emulator, FUNCTION, "live", "2", None);
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-attempt-1");
    let healer = PlatformHealer::new(&deployment.sdk);

    assert_eq!(
        healer.assess(request).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Unsafe,
    );

    assert!(summary.contains("deployed by CodeDeploy"), "{summary}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "2");
    assert!(!function_tags(&lambda, FUNCTION).await.contains_key(TAG));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_mid_shift_is_waited_for_codedeploys_as_aws_healing_a_persons_as_theirs() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function_with_versions(&deployment.sdk, FUNCTION, 3, &[]).await;
    create_alias(&lambda, FUNCTION, "live", "1").await;
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-attempt-1");
    let healer = PlatformHealer::new(&deployment.sdk);

    // A CodeDeploy canary: 10 % on version 2.
    codedeploy_moves_alias(&emulator, FUNCTION, "live", "1", Some(("2", 0.1)));
    let seen = waits(
        healer.assess(request).await.expect("assessed"),
        WaitReason::AwsHealing,
    );
    assert!(
        seen.contains("CodeDeploy is shifting it")
            && seen.contains("10 % of its traffic to version 2"),
        "{seen}"
    );
    let summary = skipped(
        healer.heal(request).await.expect("healed"),
        SkipReason::Unsafe,
    );
    assert!(summary.contains("shifting traffic"), "{summary}");

    // A person splitting traffic by hand.
    lambda
        .update_alias()
        .function_name(FUNCTION)
        .name("live")
        .function_version("1")
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .additional_version_weights("3", 0.25)
                .build(),
        )
        .send()
        .await
        .expect("a person's split");
    let seen = waits(
        healer.assess(request).await.expect("assessed"),
        WaitReason::OperatorHold,
    );
    assert!(seen.contains("25 % of its traffic to version 3"), "{seen}");
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_a_person_rolled_back_is_never_rolled_forward() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let lambda = lambda_function(&deployment.sdk, FUNCTION, &[]).await;
    // Release 2 misbehaved and a person put 1 back.
    move_alias(&lambda, FUNCTION, "live", "1").await;
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let request = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-attempt-1");

    let summary = skipped(
        PlatformHealer::new(&deployment.sdk)
            .heal(request)
            .await
            .expect("healed"),
        SkipReason::Unsafe,
    );

    assert!(
        summary.contains("was moved from version 2 to 1") && summary.contains("a rollback itself"),
        "{summary}"
    );
    assert_eq!(live_version(&lambda, FUNCTION).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_does_not_exist_is_gone_and_one_without_the_alias_has_nothing_to_roll_back()
{
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    lambda_function_with_versions(&deployment.sdk, FUNCTION, 1, &[]).await;
    let rule = shipped_rule("lambda-function-healing");
    let event = alarm(lambda_event("alarm", "no-such-function", "e1"));
    let healer = PlatformHealer::new(&deployment.sdk);
    let missing =
        autoheal_tests::first_attempt(&rule, "no-such-function", &event, "autoheal-attempt-1");

    let summary = gone(healer.assess(missing).await.expect("assessed"));
    assert!(
        summary.contains("no-such-function does not exist"),
        "{summary}"
    );
    skipped(
        healer.heal(missing).await.expect("healed"),
        SkipReason::Gone,
    );
    assert!(
        healer
            .is_gone(&rule, "no-such-function")
            .await
            .expect("looked")
    );

    let event = alarm(lambda_event("alarm", FUNCTION, "e1"));
    let aliasless = autoheal_tests::first_attempt(&rule, FUNCTION, &event, "autoheal-attempt-1");
    assert_eq!(
        healer.assess(aliasless).await.expect("assessed"),
        autoheal_core::Assessment::Proceed
    );
    let summary = skipped(
        healer.heal(aliasless).await.expect("healed"),
        SkipReason::NotNeeded,
    );
    assert!(summary.contains("has no alias live"), "{summary}");
    assert!(!healer.is_gone(&rule, FUNCTION).await.expect("looked"));
}

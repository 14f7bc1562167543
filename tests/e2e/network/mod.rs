//! The network layer's rules against the emulator: `alb-target-healing` (in `targets`),
//! `dns-failover-healing` (in `dns`) and `nat-route-healing` (in `routes`), each through the
//! network engine with the real healer, DynamoDB state and SNS notifications, or through
//! the healer itself where the test asks it to look before an attempt.

mod dns;
mod routes;
mod targets;

use serde_json::Value;

use autoheal_core::{
    AlarmEvent, HealOutcome, HealRequest, HealingRecord, Layer, RuleSet, SkipReason, SystemClock,
    Verdict,
};
use autoheal_tests::{Deployment, Emulator, TestEngine, ec2_alarm};

type NetworkEngine = TestEngine<SystemClock>;

fn network(deployment: &Deployment) -> NetworkEngine {
    deployment.layer(Layer::Network)
}

/// A rule's ALARM as a healer is handed it, for tests that call the healer directly.
struct Alarmed {
    rules: RuleSet,
    event: AlarmEvent,
    rule: &'static str,
    resource: String,
}

impl Alarmed {
    fn new(rule: &'static str, event: Value, resource: &str) -> Self {
        Alarmed {
            rules: RuleSet::shipped().expect("shipped rules"),
            event: AlarmEvent::from_value(event).expect("an alarm"),
            rule,
            resource: resource.to_owned(),
        }
    }

    /// The incident's first attempt.
    fn request(&self) -> HealRequest<'_> {
        autoheal_tests::first_attempt(
            self.rules.get(self.rule).expect("the rule"),
            &self.resource,
            &self.event,
            "autoheal-00000000000000ff00000001",
        )
    }
}

/// The healer's skip, or a panic naming what it did instead.
fn skipped(outcome: HealOutcome) -> (SkipReason, String) {
    match outcome {
        HealOutcome::Skipped { reason, summary } => (reason, summary),
        other => panic!("expected a skip: {other:?}"),
    }
}

/// The only healing record in the table.
async fn stored_record(deployment: &Deployment) -> HealingRecord {
    deployment.only_record().await
}

/// The single notification on `queue`: its attributes are checked, its record returned.
async fn single_notice(deployment: &Deployment, queue: &str, rule: &str, status: &str) -> Value {
    let published = deployment.only_notification(queue).await;
    published.assert_about("network", rule, status);
    published.record
}

// ---------------------------------------------------------------- routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_layers_event_is_skipped_by_the_network_function() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let engine = network(&deployment);

    let outcome = engine
        .handle(ec2_alarm("i-0123456789abcdef0", "ec2-to-network"), "run-1")
        .await
        .expect("handled");

    assert_eq!(outcome.decision, Verdict::Skip);
    assert_eq!(outcome.reason, Some(SkipReason::OtherLayer));
    assert!(outcome.record.is_none());
    assert_eq!(engine.healer.calls(), 0);
    assert_eq!(deployment.item_count().await, 0, "nothing written");
}

//! One alarm, one rule, one layer: alarms that EventBridge routes to several functions are
//! acted on by exactly one of them, whichever order they arrive in.

use serde_json::{Value, json};

use autoheal_core::{Layer, Outcome, SkipReason, Verdict};
use autoheal_tests::{Deployment, Emulator, sample_event};

/// Every layer's handler, in turn, with `event`: (layer, outcome, heals it ran).
async fn through_every_layer(deployment: &Deployment, event: &Value) -> Vec<(Layer, Outcome, u32)> {
    let mut results = Vec::new();
    for layer in Layer::ALL {
        let engine = deployment.layer(layer);
        let outcome = engine
            .handle(event.clone(), &format!("run-{layer}"))
            .await
            .unwrap_or_else(|e| panic!("{layer}: {e}"));
        let asked = engine.healer.calls() + engine.healer.assessed();
        results.push((layer, outcome, asked));
    }
    results
}

fn with_metric(mut event: Value, alarm_name: &str, metrics: Value) -> Value {
    event["detail"]["alarmName"] = Value::from(alarm_name);
    event["detail"]["configuration"]["metrics"] = metrics;
    event
}

fn metric(id: &str, namespace: &str, name: &str, dimensions: Value) -> Value {
    json!({
        "id": id,
        "metricStat": {
            "metric": {"namespace": namespace, "name": name, "dimensions": dimensions},
            "period": 60,
            "stat": "Maximum"
        },
        "returnData": false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_routed_to_two_layers_are_acted_on_by_exactly_one() {
    let emulator = Emulator::start();
    let deployment = Deployment::bootstrap(&emulator).await;
    let base = sample_event("ec2-instance-healing.alarm.json");
    let cases = [
        (
            // Named for the corruption rule, on the metric of the RDS reboot rule.
            with_metric(
                base.clone(),
                "database-corruption-healing-orders",
                json!([metric(
                    "m1",
                    "AWS/RDS",
                    "DatabaseConnections",
                    json!({"DBInstanceIdentifier": "orders-db"})
                )]),
            ),
            Layer::Data,
            "database-corruption-healing",
        ),
        (
            // Named for the memory-leak rule, on an EC2 status-check metric.
            with_metric(
                base.clone(),
                "memory-leak-healing-web-01",
                json!([metric(
                    "m1",
                    "AWS/EC2",
                    "StatusCheckFailed",
                    json!({"InstanceId": "i-0abc1234def567890"})
                )]),
            ),
            Layer::Application,
            "memory-leak-healing",
        ),
        (
            // Metric math over an EC2 and an ELB metric: the first rule in the file wins.
            with_metric(
                base.clone(),
                "web-degraded",
                json!([
                    {"id": "e1", "expression": "MAX(METRICS())", "returnData": true},
                    metric("m1", "AWS/EC2", "StatusCheckFailed", json!({"InstanceId": "i-0abc1234def567890"})),
                    metric("m2", "AWS/ApplicationELB", "UnHealthyHostCount", json!({
                        "TargetGroup": "targetgroup/web/0123456789abcdef",
                        "LoadBalancer": "app/web/0123456789abcdef"
                    })),
                ]),
            ),
            Layer::Infrastructure,
            "ec2-instance-healing",
        ),
    ];

    for (index, (event, owner, rule)) in cases.into_iter().enumerate() {
        let mut event = event;
        event["id"] = Value::from(format!("overlap-{index}"));
        let results = through_every_layer(&deployment, &event).await;

        let deciding: Vec<Layer> = results
            .iter()
            .filter(|(_, outcome, _)| outcome.reason != Some(SkipReason::OtherLayer))
            .map(|(layer, _, _)| *layer)
            .collect();
        assert_eq!(deciding, [owner], "{rule}: {results:#?}");
        for (layer, outcome, calls) in &results {
            assert_eq!(outcome.rule.as_deref(), Some(rule), "{layer}: {outcome:?}");
            if *layer == owner {
                // The owner looks at the resource, then acts on it; these resources do not
                // exist in the emulator, so the look finds them gone and the run says so.
                assert_eq!(
                    outcome.reason,
                    Some(SkipReason::Gone),
                    "{layer}: {outcome:?}"
                );
                assert!(outcome.record.is_some(), "{layer} records its run");
                assert_eq!(*calls, 1, "{layer} looked at the resource once");
            } else {
                assert_eq!(outcome.decision, Verdict::Skip, "{layer}: {outcome:?}");
                assert_eq!(
                    *calls, 0,
                    "{layer} must not look at or act on {rule}'s alarm"
                );
                assert!(outcome.record.is_none(), "{layer} records nothing");
            }
        }
    }
}

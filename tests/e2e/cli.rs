//! The `autoheal` command line, run as an operator runs it.

use std::process::{Command, Output};

use serde_json::Value;

use autoheal_tests::{Emulator, Fleet, ScratchDir, binary, ec2_alarm, workspace};

fn autoheal(args: &[&str]) -> Output {
    Command::new(binary("autoheal"))
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AUTOHEAL_TOPIC_ARN")
        .env_remove("AUTOHEAL_TABLE_NAME")
        .env_remove("AUTOHEAL_SCHEDULER_ROLE_ARN")
        .env_remove("AUTOHEAL_FUNCTION_ARN_PREFIX")
        .env_remove("AUTOHEAL_SCOPE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run autoheal")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn path(relative: &str) -> String {
    workspace().join(relative).display().to_string()
}

#[test]
fn against_aws_invoke_refuses_to_heal_without_knowing_where_follow_ups_go() {
    let event = path("events/ec2-instance-healing.alarm.json");
    let output = autoheal(&[
        "invoke",
        "--event",
        &event,
        "--topic-arn",
        "arn:aws:sns:us-east-1:123456789012:autoheal",
    ]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--scheduler-role-arn") && stderr.contains("--function-arn-prefix"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing was handled");
}

#[test]
fn every_command_has_help() {
    for command in [
        &["--help"][..],
        &["validate", "--help"],
        &["explain", "--help"],
        &["bootstrap", "--help"],
        &["invoke", "--help"],
        &["tick", "--help"],
        &["reset", "--help"],
        &["history", "--help"],
        &["stats", "--help"],
    ] {
        let output = autoheal(command);
        assert!(output.status.success(), "{command:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{command:?}"
        );
    }
}

#[test]
fn validate_accepts_the_shipped_rules_and_names_the_fault_in_a_bad_file() {
    let ok = autoheal(&["validate"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = ScratchDir::new("validate");
    let bad = dir.join("rules.toml");
    let shipped =
        std::fs::read_to_string(workspace().join("rules/autoheal-rules.toml")).expect("rules");
    std::fs::write(
        &bad,
        shipped.replacen("cooldown_seconds = 300", "cooldown_seconds = -1", 1),
    )
    .expect("write");

    let output = autoheal(&["validate", &bad.display().to_string()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("asg-capacity-healing") && stderr.contains("cooldown_seconds"),
        "{stderr}"
    );
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn validate_names_the_line_and_field_of_a_wrong_snapshot_retention() {
    let dir = ScratchDir::new("retention");
    let bad = dir.join("rules.toml");
    let shipped =
        std::fs::read_to_string(workspace().join("rules/autoheal-rules.toml")).expect("rules");
    let text = shipped.replacen("keep_snapshots = 3", "keep_snapshots = -1", 1);
    let line = text
        .lines()
        .position(|l| l == "keep_snapshots = -1")
        .expect("the edited line")
        + 1;
    std::fs::write(&bad, text).expect("write");

    let output = autoheal(&["validate", &bad.display().to_string()]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "line {line}: rule `ebs-volume-healing`: field `action.keep_snapshots`: "
        )),
        "{stderr}"
    );
}

#[test]
fn explain_reads_the_aws_documentation_samples() {
    for sample in [
        "single-metric-cpu",
        "metric-math",
        "anomaly-detection",
        "composite",
    ] {
        let output = autoheal(&[
            "explain",
            "--event",
            &path(&format!("events/aws-samples/{sample}.json")),
        ]);
        assert!(
            output.status.success(),
            "{sample}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let explanation = stdout_json(&output);
        for field in [
            "layer",
            "rule",
            "resource_id",
            "action",
            "decision",
            "reason",
        ] {
            assert!(
                explanation.get(field).is_some(),
                "{sample}: no `{field}` in {explanation}"
            );
        }
        assert_eq!(
            explanation["decision"], "skip",
            "{sample}: no shipped rule matches"
        );
        assert_eq!(explanation["reason"], "no-matching-rule", "{sample}");
    }
}

#[test]
fn explain_names_the_rule_and_resource_of_a_matching_event() {
    let output = autoheal(&[
        "explain",
        "--event",
        &path("events/ec2-instance-healing.alarm.json"),
    ]);
    assert!(output.status.success());
    let explanation = stdout_json(&output);
    assert_eq!(explanation["layer"], "infrastructure");
    assert_eq!(explanation["rule"], "ec2-instance-healing");
    assert_eq!(explanation["action"], "recover-ec2-instance");
    assert_eq!(explanation["decision"], "act");
    assert!(
        explanation["resource_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("i-"))
    );
}

#[test]
fn explain_rejects_an_unreadable_event_clearly() {
    let dir = ScratchDir::new("explain");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{ this is not json").expect("write");
    for file in [
        garbage.display().to_string(),
        dir.join("missing.json").display().to_string(),
    ] {
        let output = autoheal(&["explain", "--event", &file]);
        assert!(!output.status.success(), "{file}");
        assert!(output.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&output.stderr).starts_with("error: "),
            "{file}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_then_invoke_recovers_the_instance_once_even_when_run_ten_times_at_once() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let url = emulator.url();
    let bootstrap = autoheal(&["bootstrap", "--endpoint-url", &url]);
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let sdk = emulator.sdk().await;
    let fleet = Fleet::new(&sdk);
    let old = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    let dir = ScratchDir::new("invoke");
    let event = dir.join("event.json");
    std::fs::write(&event, ec2_alarm(&old, "cli-event").to_string()).expect("write");
    let event = event.display().to_string();

    let children: Vec<_> = (0..10)
        .map(|_| {
            Command::new(binary("autoheal"))
                .args([
                    "invoke",
                    "--fire",
                    "--event",
                    &event,
                    "--endpoint-url",
                    &url,
                    "--output",
                    "json",
                ])
                .env_remove("AUTOHEAL_TOPIC_ARN")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn autoheal invoke")
        })
        .collect();
    let outcomes: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("wait");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            stdout_json(&output)
        })
        .collect();

    let completed = outcomes
        .iter()
        .filter(|o| o["record"]["status"] == "completed")
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| o["reason"] == "duplicate")
        .count();
    assert_eq!((completed, duplicates), (1, 9), "{outcomes:#?}");
    assert_eq!(
        fleet.history(&old).await,
        ["stop", "start"],
        "stopped and started exactly once"
    );
}

#[test]
fn explain_names_the_rule_of_every_sample_event() {
    let dir = workspace().join("events");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("events/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(rule) = name
            .strip_suffix(".alarm.json")
            .or_else(|| name.strip_suffix(".ok.json"))
        else {
            continue;
        };
        let output = autoheal(&["explain", "--event", &path.display().to_string()]);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let explanation = stdout_json(&output);
        assert_eq!(explanation["rule"], rule, "{name}: {explanation}");
        if name.ends_with(".alarm.json") {
            assert_eq!(explanation["decision"], "act", "{name}: {explanation}");
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "an ALARM and an OK event per shipped rule, found {checked}"
    );
}

/// Provisions the resource of every shipped rule, then runs `autoheal invoke` on that rule's
/// sample ALARM event, aimed at it, as an operator would after `autoheal bootstrap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoheal_invoke_heals_the_resource_of_every_shipped_rule() {
    use autoheal_tests::application::{AppParameters, app_instance, application_alarm};
    use autoheal_tests::data::{DataStores, data_alarm};
    use autoheal_tests::network::{
        DnsFixture, NatFixture, TargetGroupFixture, alb_alarm, dns_alarm, nat_alarm, weighted,
    };
    use autoheal_tests::platform::{
        EcsService, ecs_event, lambda_event, lambda_function, rds_event, rds_instance,
    };
    use autoheal_tests::rule_event;
    use serde_json::json;

    // The Systems Manager addition lets `memory-leak-healing` see a managed instance, the EC2,
    // load balancer and Route 53 ones let a status check, a target and a health check fail, and
    // Route 53 checks change batches as it does; they change nothing else.
    let emulator = Emulator::start_with_shims(&[
        "moto_ssm_instance_information.py",
        "moto_ec2_status_checks.py",
        "moto_elbv2_target_health.py",
        "moto_route53_health_status.py",
        "moto_route53_change_batch.py",
    ]);
    emulator.lambda_without_docker();
    let url = emulator.url();
    let bootstrap = autoheal(&["bootstrap", "--endpoint-url", &url]);
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let sdk = emulator.sdk().await;
    let fleet = Fleet::new(&sdk);

    let mut events: Vec<(&str, Value)> = Vec::new();
    let instance = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    events.push(("ec2-instance-healing", ec2_alarm(&instance, "cli-ec2")));
    let (group, member) = fleet.auto_scaling_group("web-asg").await;
    fleet
        .autoscaling
        .set_instance_health()
        .instance_id(&member)
        .health_status("Unhealthy")
        .send()
        .await
        .expect("mark unhealthy");
    events.push((
        "asg-capacity-healing",
        rule_event(
            "asg-capacity-healing",
            "alarm",
            "cli-asg",
            "AutoScalingGroupName",
            &group,
        ),
    ));
    let host = fleet.standalone(&[]).await;
    let volume = fleet.attached_volume(&host, "/dev/sdf", &[]).await;
    events.push((
        "ebs-volume-healing",
        rule_event(
            "ebs-volume-healing",
            "alarm",
            "cli-ebs",
            "VolumeId",
            &volume,
        ),
    ));
    let service = EcsService::create(&sdk, "prod-cluster", "orders-api", &[]).await;
    events.push((
        "ecs-service-healing",
        ecs_event("alarm", &service.cluster, &service.service, "cli-ecs"),
    ));
    lambda_function(&sdk, "checkout", &[]).await;
    events.push((
        "lambda-function-healing",
        lambda_event("alarm", "checkout", "cli-lambda"),
    ));
    rds_instance(&sdk, "orders-db", false, &[]).await;
    events.push((
        "rds-instance-healing",
        rds_event("alarm", "orders-db", "cli-rds"),
    ));
    let parameters = AppParameters::new(&sdk);
    parameters
        .create(
            "/autoheal/payments-api/circuit-breaker",
            &json!({ "state": "open" }),
            &[],
        )
        .await;
    events.push((
        "circuit-breaker-healing",
        application_alarm("circuit-breaker-healing", "payments-api", "cli-breaker"),
    ));
    let app_host = app_instance(&sdk, &[], true).await;
    events.push((
        "memory-leak-healing",
        application_alarm("memory-leak-healing", &app_host, "cli-memory"),
    ));
    parameters
        .create(
            "/autoheal/payments-api/connection-pool",
            &json!({ "max_connections": 50, "timeout_seconds": 10, "generation": 1 }),
            &[],
        )
        .await;
    events.push((
        "connection-pool-healing",
        application_alarm("connection-pool-healing", "payments-api", "cli-pool"),
    ));
    parameters
        .create(
            "/autoheal/payments-api/degradation",
            &json!({ "degraded": false }),
            &[],
        )
        .await;
    events.push((
        "graceful-degradation-healing",
        application_alarm(
            "graceful-degradation-healing",
            "payments-api",
            "cli-degrade",
        ),
    ));
    let stores = DataStores::new(&sdk);
    stores.database("ledger-db", &[], 7).await;
    events.push((
        "database-corruption-healing",
        data_alarm("database-corruption-healing", "ledger-db", "cli-restore"),
    ));
    stores.cache_cluster("sessions-cache-001", &[]).await;
    events.push((
        "cache-invalidation-healing",
        data_alarm(
            "cache-invalidation-healing",
            "sessions-cache-001",
            "cli-cache",
        ),
    ));
    stores.database("billing-db", &[], 7).await;
    events.push((
        "backup-verification-healing",
        data_alarm("backup-verification-healing", "billing-db", "cli-backup"),
    ));
    let targets = TargetGroupFixture::create(&sdk, 3, &[]).await;
    targets.fail(&[&targets.instances[0]]).await;
    events.push(("alb-target-healing", alb_alarm(&targets.arn, "cli-alb")));
    let dns = DnsFixture::create(&sdk).await;
    let blue = dns.health_check("192.0.2.10", &[]).await;
    let green = dns.health_check("192.0.2.20", &[]).await;
    dns.set_health(&blue, "Failure").await;
    dns.records(vec![
        weighted("blue", "192.0.2.10", 70, &blue),
        weighted("green", "192.0.2.20", 30, &green),
    ])
    .await;
    events.push(("dns-failover-healing", dns_alarm(&blue, "cli-dns")));
    let nat = NatFixture::with_standby(&sdk, &[]).await;
    events.push(("nat-route-healing", nat_alarm(&nat.failing, "cli-nat")));

    let shipped = autoheal_core::RuleSet::shipped().expect("shipped rules");
    assert_eq!(
        events.len(),
        shipped.rules().len(),
        "one event per shipped rule"
    );
    let dir = ScratchDir::new("invoke-all");
    for (rule, event) in events {
        let file = dir.join(format!("{rule}.json"));
        std::fs::write(&file, event.to_string()).expect("write");
        let output = autoheal(&[
            "invoke",
            "--fire",
            "--event",
            &file.display().to_string(),
            "--endpoint-url",
            &url,
        ]);
        assert!(
            output.status.success(),
            "{rule}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let outcome = stdout_json(&output);
        let layer = shipped
            .get(rule)
            .map(|r| r.layer.as_str())
            .expect("a shipped rule");
        assert_eq!(outcome["rule"], rule, "{outcome:#}");
        assert_eq!(outcome["layer"], layer, "{outcome:#}");
        assert_eq!(outcome["decision"], "act", "{rule}: {outcome:#}");
        assert_eq!(
            outcome["record"]["status"], "completed",
            "{rule}: {outcome:#}"
        );
    }
}

#[test]
fn validate_warns_about_a_rule_an_earlier_rule_always_takes_first() {
    let shipped = std::fs::read_to_string(path("rules/autoheal-rules.toml")).expect("rules");
    let shadowed = r#"
[[rule]]
name = "ec2-instance-healing-copy"
layer = "infrastructure"
cooldown_seconds = 600
max_attempts = 1
[rule.trigger]
namespace = "AWS/EC2"
metrics = ["StatusCheckFailed_System"]
dimensions = ["InstanceId"]
[rule.resource]
dimension = "InstanceId"
[rule.action]
type = "recover-ec2-instance"
"#;
    let dir = ScratchDir::new("shadowed");
    let file = dir.join("rules.toml");
    std::fs::write(&file, format!("{shipped}\n{shadowed}")).expect("write");

    let output = autoheal(&["validate", &file.display().to_string()]);
    let shipped_output = autoheal(&["validate"]);

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].contains("ec2-instance-healing-copy")
            && warnings[0].contains("`ec2-instance-healing`, earlier in the file"),
        "{stdout}"
    );
    assert!(
        !String::from_utf8_lossy(&shipped_output.stdout).contains("warning:"),
        "the shipped rules shadow nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_with_a_layer_runs_that_layers_handler_whatever_the_event() {
    let emulator = Emulator::start();
    let url = emulator.url();
    let bootstrap = autoheal(&["bootstrap", "--endpoint-url", &url]);
    assert!(bootstrap.status.success());
    let dir = ScratchDir::new("layer");
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        ec2_alarm("i-0abc1234def567890", "cli-layer").to_string(),
    )
    .expect("write");
    let event = event.display().to_string();

    let platform = autoheal(&[
        "invoke",
        "--event",
        &event,
        "--layer",
        "platform",
        "--endpoint-url",
        &url,
    ]);
    let unknown = autoheal(&[
        "invoke",
        "--event",
        &event,
        "--layer",
        "storage",
        "--endpoint-url",
        &url,
    ]);

    assert!(
        platform.status.success(),
        "{}",
        String::from_utf8_lossy(&platform.stderr)
    );
    let outcome = stdout_json(&platform);
    assert_eq!(outcome["layer"], "platform", "{outcome:#}");
    assert_eq!(outcome["rule"], "ec2-instance-healing");
    assert_eq!(outcome["decision"], "skip");
    assert_eq!(outcome["reason"], "other-layer");
    assert!(
        outcome.get("record").is_none(),
        "nothing recorded: {outcome:#}"
    );
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown layer `storage`"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// The operator's loop on the emulator: invoke acts and schedules a follow-up; `tick` fires it
/// when due (here: with the alarm still on, the next attempt) and deletes its schedule; once
/// the attempts are spent, `reset` closes the escalated incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_fires_due_follow_ups_and_reset_closes_an_escalated_incident() {
    let emulator = Emulator::start();
    let url = emulator.url();
    assert!(
        autoheal(&["bootstrap", "--endpoint-url", &url])
            .status
            .success()
    );
    let deployment = autoheal_tests::Deployment::bootstrap(&emulator).await;
    let fleet = autoheal_tests::Fleet::new(&deployment.sdk);
    let (_, member) = fleet.auto_scaling_group("web-asg").await;
    deployment
        .set_alarm(&autoheal_tests::ec2_alarm_name(&member), "ALARM")
        .await;
    let dir = ScratchDir::new("tick");
    let event = dir.join("event.json");
    std::fs::write(&event, ec2_alarm(&member, "cli-tick").to_string()).expect("write");
    let event = event.display().to_string();

    let invoked = autoheal(&[
        "invoke",
        "--fire",
        "--event",
        &event,
        "--endpoint-url",
        &url,
    ]);
    let nothing_due = autoheal(&["tick", "--endpoint-url", &url]);
    let mut ticks = Vec::new();
    for hours in [2, 6, 12] {
        let at = format!("+{hours}h");
        ticks.push(autoheal(&["tick", "--endpoint-url", &url, "--at", &at]));
    }
    let reset = autoheal(&[
        "reset",
        "--endpoint-url",
        &url,
        "--rule",
        "ec2-instance-healing",
        "--resource",
        &member,
        "--at",
        "+13h",
    ]);
    let reset_again = autoheal(&[
        "reset",
        "--endpoint-url",
        &url,
        "--rule",
        "ec2-instance-healing",
        "--resource",
        &member,
    ]);

    assert_eq!(stdout_json(&invoked)["decision"], "act");
    assert_eq!(stdout_json(&nothing_due), serde_json::json!([]));
    let decisions: Vec<Value> = ticks
        .iter()
        .map(|tick| {
            assert!(
                tick.status.success(),
                "{}",
                String::from_utf8_lossy(&tick.stderr)
            );
            let fired = stdout_json(tick);
            assert_eq!(fired.as_array().map(Vec::len), Some(1), "{fired:#}");
            serde_json::json!([fired[0]["decision"], fired[0]["reason"]])
        })
        .collect();
    assert_eq!(
        decisions,
        [
            serde_json::json!(["act", null]),
            serde_json::json!(["act", null]),
            serde_json::json!(["skip", "max-attempts"]),
        ]
    );
    assert!(deployment.follow_ups().await.is_empty());
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(stdout_json(&reset)["phase"], "reset");
    // The reset was written 13 h ahead of the clock, maybe on the next UTC day: read as of then.
    let history = autoheal(&[
        "history",
        "--endpoint-url",
        &url,
        "--resource",
        &member,
        "--at",
        "+13h",
    ]);
    let timelines = stdout_json(&history);
    assert_eq!(timelines.as_array().map(Vec::len), Some(1), "{timelines:#}");
    assert_eq!(timelines[0]["state"], "reset");
    let stages: Vec<&str> = timelines[0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|step| step["stage"].as_str())
        .collect();
    assert_eq!(stages, ["acted", "acted", "acted", "escalated", "reset"]);
    assert!(!reset_again.status.success());
    assert!(
        String::from_utf8_lossy(&reset_again.stderr).contains("has no open incident"),
        "{}",
        String::from_utf8_lossy(&reset_again.stderr)
    );
}

/// With the stack's scope `tagged` (`AUTOHEAL_SCOPE`, `--scope`), only a resource tagged
/// `autoheal:protect=true` is changed: an impaired instance without the tag is skipped as
/// opted out and left as it is, and the same fault on a tagged instance is healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_tagged_scope_only_a_resource_tagged_protect_is_healed() {
    let emulator = Emulator::start_with_ec2_status_checks();
    let url = emulator.url();
    assert!(
        autoheal(&["bootstrap", "--endpoint-url", &url])
            .status
            .success()
    );
    let deployment = autoheal_tests::Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let impaired = ("emulator:system-status", "impaired");
    let bare = fleet.standalone(&[impaired]).await;
    let protected = fleet
        .standalone(&[impaired, ("autoheal:protect", "true")])
        .await;
    let dir = ScratchDir::new("scope");
    let mut outcomes = Vec::new();
    for (instance, id) in [(&bare, "scope-1"), (&protected, "scope-2")] {
        let event = dir.join(format!("{id}.json"));
        std::fs::write(&event, ec2_alarm(instance, id).to_string()).expect("write");
        let event = event.display().to_string();
        let args = [
            "invoke",
            "--fire",
            "--event",
            &event,
            "--endpoint-url",
            &url,
            "--scope",
            "tagged",
        ];
        let output = autoheal(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        outcomes.push(stdout_json(&output));
    }

    let skipped = &outcomes[0]["record"];
    assert_eq!(skipped["status"], "skipped", "{:#}", outcomes[0]);
    assert_eq!(skipped["skip_reason"], "opted-out", "{:#}", outcomes[0]);
    assert!(
        skipped["summary"]
            .as_str()
            .is_some_and(|summary| summary.contains("not tagged autoheal:protect=true")),
        "{skipped:#}"
    );
    assert!(fleet.history(&bare).await.is_empty());
    assert_eq!(outcomes[1]["decision"], "act", "{:#}", outcomes[1]);
    assert_ne!(
        outcomes[1]["record"]["status"], "skipped",
        "{:#}",
        outcomes[1]
    );
    assert!(!fleet.history(&protected).await.is_empty());

    let event = dir.join("scope-1.json").display().to_string();
    let refused = autoheal(&[
        "invoke",
        "--event",
        &event,
        "--endpoint-url",
        &url,
        "--scope",
        "some",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a scope"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

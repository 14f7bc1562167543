//! `make demo`: autoheal healing every layer of a workload in an emulated AWS account.
//!
//! Starts the local emulator, creates autoheal's table and topic with `autoheal bootstrap`,
//! provisions a web server with an Elastic IP and an Auto Scaling group, then fires the
//! sample alarms in CloudWatch and delivers their events through `autoheal invoke --fire`
//! (the real handler of each layer, which acts only on an alarm CloudWatch holds) and shows what
//! autoheal decided, what it changed, what it put back when the alarm cleared; then fires the
//! follow-ups (`autoheal tick`): heals verified and resolved, one retried without a new alarm
//! and escalated, then closed by `autoheal reset`; a burst of alarms held to the budget, with
//! the deferred heals as timelines; what it told subscribers, and its statistics.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod style;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use autoheal_tests::application::{AppParameters, application_alarm};
use autoheal_tests::data::{DataStores, data_alarm};
use autoheal_tests::network::{NatFixture, nat_alarm};
use autoheal_tests::platform::{lambda_event, lambda_function, live_version};
use autoheal_tests::{Deployment, Emulator, Fleet, binary, ec2_alarm, ec2_ok, rule_event};

fn step(title: &str) {
    println!("\n{}", style::bold(&format!("== {title}")));
}

fn autoheal(args: &[&str]) -> String {
    let mut shown = vec!["autoheal"];
    shown.extend(args.iter().map(|arg| {
        if arg.starts_with("http://") {
            "$EMULATOR"
        } else {
            arg
        }
    }));
    println!("$ {}", shown.join(" "));
    let output = Command::new(binary("autoheal"))
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run autoheal");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("autoheal {args:?} failed");
    }
    stdout
}

/// Fires the alarm of one event file in CloudWatch and delivers the event to its layer's
/// handler, as EventBridge would, and shows the run.
fn invoke(event: &str, endpoint_url: &str) -> String {
    autoheal(&[
        "invoke",
        "--fire",
        "--event",
        event,
        "--endpoint-url",
        endpoint_url,
        "--output",
        "table",
    ])
}

/// Fires the follow-ups due at `at` (e.g. `+20m`), as EventBridge Scheduler would then.
fn tick(endpoint_url: &str, at: &str) -> String {
    autoheal(&[
        "tick",
        "--endpoint-url",
        endpoint_url,
        "--at",
        at,
        "--output",
        "table",
    ])
}

/// The alarm name an event file carries.
fn alarm_name(path: &str) -> String {
    let text = std::fs::read_to_string(path).expect("the event file");
    let event: Value = serde_json::from_str(&text).expect("JSON");
    event["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned()
}

fn write_event(dir: &Path, name: &str, event: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(event).expect("JSON")).expect("write event");
    path.display().to_string()
}

async fn show_instance(fleet: &Fleet, id: &str) {
    let instance = fleet.instance(id).await;
    let state = instance
        .state()
        .and_then(|s| s.name())
        .map_or("?", |name| name.as_str());
    let eip = fleet
        .ec2
        .describe_addresses()
        .send()
        .await
        .expect("addresses")
        .addresses()
        .iter()
        .find(|a| a.instance_id() == Some(id))
        .and_then(|a| a.public_ip().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned());
    let history = fleet.history(id).await;
    println!(
        "  {id}  {state:<11} type {:<9} private ip {}  elastic ip {eip}  stops/starts/reboots: {}",
        instance.instance_type().map_or("?", |t| t.as_str()),
        instance.private_ip_address().unwrap_or("-"),
        if history.is_empty() {
            "none".to_owned()
        } else {
            history.join(", ")
        },
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    step("Start the local AWS emulator (127.0.0.1 only)");
    // The EC2 addition lets a status check fail (moto's always pass); it changes nothing else.
    let emulator = Emulator::start_with_ec2_status_checks();
    let url = emulator.url();
    println!("emulator at {url}");

    step("Create autoheal's state table and notification topic");
    autoheal(&["bootstrap", "--endpoint-url", &url]);
    let deployment = Deployment::bootstrap(&emulator).await;
    let queue = deployment.subscribe_queue("on-call").await;
    println!("an SQS queue stands in for the on-call team's subscription");

    step("Provision the workload");
    let fleet = Fleet::new(&deployment.sdk);
    let web = fleet
        .standalone(&[
            ("Name", "web-01"),
            ("team", "checkout"),
            ("emulator:system-status", "impaired"),
        ])
        .await;
    fleet.elastic_ip(&web).await;
    let (group, member) = fleet.auto_scaling_group("api-asg").await;
    println!("standalone web server:");
    show_instance(&fleet, &web).await;
    println!("Auto Scaling group {group}, member:");
    show_instance(&fleet, &member).await;

    step("What is protected? (every resource of the workload: --scope all)");
    autoheal(&["coverage", "--scope", "all", "--endpoint-url", &url]);

    step("Create the alarms the rules need, then look again");
    autoheal(&["alarms", "apply", "--scope", "all", "--endpoint-url", &url]);
    autoheal(&["coverage", "--scope", "all", "--endpoint-url", &url]);

    let dir = std::env::temp_dir().join(format!("autoheal-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let web_alarm = write_event(&dir, "web-alarm.json", &ec2_alarm(&web, "demo-web-alarm-1"));
    let web_ok = write_event(&dir, "web-ok.json", &ec2_ok(&web, "demo-web-ok-1"));
    let mut api_event = ec2_alarm(&member, "demo-api-alarm-1");
    api_event["detail"]["alarmName"] = Value::from("api-asg-member-status-check-failed");
    let api_alarm = write_event(&dir, "api-alarm.json", &api_event);

    step("web-01 fails its system status check: what would autoheal do? (no AWS calls)");
    autoheal(&["explain", "--event", &web_alarm]);

    step(
        "The alarm fires: the infrastructure handler stops and starts web-01 onto healthy hardware",
    );
    invoke(&web_alarm, &url);
    println!("EC2 now (the same instance, its private IP and Elastic IP kept):");
    show_instance(&fleet, &web).await;

    step("EventBridge delivers the same event again: nothing is done twice");
    invoke(&web_alarm, &url);

    step("An Auto Scaling member fails: autoheal hands it to its group");
    invoke(&api_alarm, &url);

    step("The alarm returns to OK: the incident starts closing");
    invoke(&web_ok, &url);

    step("The group's status checks fail: autoheal adds 2 instances (within its maximum)");
    let group_alarm = write_event(
        &dir,
        "group-alarm.json",
        &rule_event(
            "asg-capacity-healing",
            "alarm",
            "demo-group-alarm-1",
            "AutoScalingGroupName",
            &group,
        ),
    );
    let group_ok = write_event(
        &dir,
        "group-ok.json",
        &rule_event(
            "asg-capacity-healing",
            "ok",
            "demo-group-ok-1",
            "AutoScalingGroupName",
            &group,
        ),
    );
    println!(
        "desired capacity before: {:?}",
        fleet.group(&group).await.desired_capacity()
    );
    invoke(&group_alarm, &url);
    println!(
        "desired capacity now: {:?}",
        fleet.group(&group).await.desired_capacity()
    );
    step("The group's alarm returns to OK: autoheal puts its capacity back");
    invoke(&group_ok, &url);
    println!(
        "desired capacity after: {:?}",
        fleet.group(&group).await.desired_capacity()
    );

    step("Platform layer: release 2 of the checkout function throws errors");
    let lambda = lambda_function(&deployment.sdk, "checkout", &[]).await;
    println!(
        "alias live -> version {}",
        live_version(&lambda, "checkout").await
    );
    let lambda_alarm = write_event(
        &dir,
        "lambda-alarm.json",
        &lambda_event("alarm", "checkout", "demo-lambda-1"),
    );
    invoke(&lambda_alarm, &url);
    println!(
        "alias live -> version {}",
        live_version(&lambda, "checkout").await
    );

    step("Application layer: a circuit breaker is stuck open");
    let parameters = AppParameters::new(&deployment.sdk);
    let breaker = "/autoheal/orders-api/circuit-breaker";
    parameters
        .create(
            breaker,
            &json!({ "state": "open", "opened_by": "orders-api" }),
            &[],
        )
        .await;
    println!("parameter {breaker}: {}", parameters.read(breaker).await.0);
    let breaker_alarm = write_event(
        &dir,
        "breaker-alarm.json",
        &application_alarm("circuit-breaker-healing", "orders-api", "demo-breaker-1"),
    );
    invoke(&breaker_alarm, &url);
    println!("parameter {breaker}: {}", parameters.read(breaker).await.0);

    step("Data layer: corruption detected in orders-db");
    let stores = DataStores::new(&deployment.sdk);
    stores.database("orders-db", &[], 7).await;
    let corruption_alarm = write_event(
        &dir,
        "corruption-alarm.json",
        &data_alarm(
            "database-corruption-healing",
            "orders-db",
            "demo-corruption-1",
        ),
    );
    invoke(&corruption_alarm, &url);
    println!(
        "RDS instances now: {}",
        stores.instance_ids().await.join(", ")
    );

    step("Network layer: a NAT gateway drops packets");
    let nat = NatFixture::with_standby(&deployment.sdk, &[]).await;
    println!(
        "routes of {} before: {:?}",
        nat.route_table,
        nat.nat_routes().await
    );
    let nat_event = write_event(
        &dir,
        "nat-alarm.json",
        &nat_alarm(&nat.failing, "demo-nat-1"),
    );
    invoke(&nat_event, &url);
    println!(
        "routes of {} after:  {:?}",
        nat.route_table,
        nat.nat_routes().await
    );

    step("CloudWatch: every alarm is OK again, except the checkout function's errors");
    // CloudWatch holds the alarms' state; each follow-up reads its alarm back from it.
    let alarms = [
        &web_alarm,
        &api_alarm,
        &group_alarm,
        &breaker_alarm,
        &corruption_alarm,
        &nat_event,
    ];
    for event in alarms {
        deployment.set_alarm(&alarm_name(event), "OK").await;
    }
    deployment
        .set_alarm(&alarm_name(&lambda_alarm), "ALARM")
        .await;
    println!(
        "the emulator stores follow-ups but never fires them: `autoheal tick` does, as if it were later"
    );

    step(
        "20 minutes later: the follow-ups verify the heals and resolve them; checkout, still failing, is retried with no new alarm",
    );
    tick(&url, "+20m");
    step("40 minutes later: checkout still fails and its attempts are spent: one escalation");
    tick(&url, "+40m");
    step(
        "3 hours later: the last follow-up (the restore's longer backoff) resolves; nothing is left",
    );
    tick(&url, "+3h");
    step("The on-call engineer fixes checkout and closes the incident");
    autoheal(&[
        "reset",
        "--endpoint-url",
        &url,
        "--rule",
        "lambda-function-healing",
        "--resource",
        "checkout",
        "--at",
        "+4h",
    ]);
    step("The incident's timeline, read back from the state table");
    autoheal(&[
        "history",
        "--endpoint-url",
        &url,
        "--resource",
        "checkout",
        "--output",
        "table",
    ]);

    step("An Availability Zone event: 6 more instances fail their status checks within a minute");
    let burst = fleet
        .standalone_fleet(
            aws_sdk_ec2::types::InstanceType::T3Small,
            6,
            &[("Name", "batch"), ("emulator:system-status", "impaired")],
        )
        .await;
    println!(
        "the rule's budget is 5 actions per 15 minutes, 2 of them spent on web-01 and the api member: \
         3 are healed, the rest deferred to when the budget reopens, with one notification"
    );
    for (n, instance) in burst.iter().enumerate() {
        let mut event = ec2_alarm(instance, &format!("demo-burst-{n}"));
        event["detail"]["alarmName"] = Value::from(format!("batch-{n}-status-check-failed"));
        let path = write_event(&dir, &format!("burst-{n}.json"), &event);
        invoke(&path, &url);
    }
    step("The burst as timelines: healed, or deferred until the budget reopens");
    autoheal(&[
        "history",
        "--endpoint-url",
        &url,
        "--rule",
        "ec2-instance-healing",
        "--since",
        "1h",
        "--output",
        "table",
    ]);

    step("What subscribers heard (SNS, through the on-call queue)");
    for notification in deployment.notifications(&queue).await {
        let attributes = &notification["MessageAttributes"];
        println!(
            "  [{} / {}] {}",
            attributes["kind"]["Value"].as_str().unwrap_or("?"),
            attributes["status"]["Value"].as_str().unwrap_or("?"),
            notification["Subject"].as_str().unwrap_or("?")
        );
    }

    step("Statistics read back from the state table");
    autoheal(&["stats", "--endpoint-url", &url, "--output", "table"]);

    let _ = std::fs::remove_dir_all(&dir);
    step("Stop the emulator");
    drop(emulator);
    println!("done");
}

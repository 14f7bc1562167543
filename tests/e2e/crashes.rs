//! Crashes: `autoheal invoke` killed (SIGKILL) after its claim and after its action. The
//! claim's lease and the check scheduled before acting finish the attempt, with its own
//! token: nothing is done twice and no incident is left open.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use autoheal_tests::{Deployment, Emulator, Fleet, ScratchDir, binary, ec2_alarm, ec2_alarm_name};

fn autoheal(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary("autoheal"));
    command
        .args(args)
        .args(["--endpoint-url", url])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AUTOHEAL_TOPIC_ARN")
        .env_remove("AUTOHEAL_CRASH_POINT")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn json_of(command: &mut Command) -> Value {
    let output = command.output().expect("run autoheal");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Runs `autoheal invoke` until it reaches `point`, then kills it (SIGKILL).
fn invoke_and_kill_at(url: &str, event: &str, point: &str) {
    let mut child = autoheal(
        url,
        &["invoke", "--fire", "--event", event, "--output", "json"],
    )
    .env("AUTOHEAL_CRASH_POINT", point)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn autoheal invoke");
    let stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(120);
    let marker = format!("crash point {point} reached");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        if line.contains(&marker) {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
            return;
        }
        seen.push(line);
        assert!(Instant::now() < deadline, "no crash point: {seen:#?}");
    }
    let status = child.wait().expect("exited");
    panic!("invoke ended ({status}) before {point}: {seen:#?}");
}

/// Ticks an hour at a time until a follow-up's run ends the attempt (completed, or found
/// not needed), returning every outcome fired.
fn tick_until_done(url: &str) -> Vec<Value> {
    let mut fired = Vec::new();
    for hour in 1..=12 {
        let at = format!("+{hour}h");
        let outcomes = json_of(&mut autoheal(
            url,
            &["tick", "--output", "json", "--at", &at],
        ));
        let done = outcomes.as_array().expect("outcomes").iter().any(|o| {
            o["decision"] == "act" || o["decision"] == "resolve" || o["reason"] == "not-needed"
        });
        fired.extend(outcomes.as_array().cloned().unwrap_or_default());
        if done {
            return fired;
        }
    }
    panic!("no follow-up finished the attempt: {fired:#?}");
}

/// One impaired instance in ALARM, and its event in a file.
struct Scene {
    deployment: Deployment,
    fleet: Fleet,
    url: String,
    instance: String,
    event: String,
    _event_dir: ScratchDir,
    _emulator: Emulator,
}

async fn started(name: &str) -> Scene {
    let emulator = Emulator::start_with_ec2_status_checks();
    let url = emulator.url();
    json_of(&mut autoheal(&url, &["bootstrap"]));
    let deployment = Deployment::bootstrap(&emulator).await;
    let fleet = Fleet::new(&deployment.sdk);
    let instance = fleet
        .standalone(&[("emulator:system-status", "impaired")])
        .await;
    deployment
        .set_alarm(&ec2_alarm_name(&instance), "ALARM")
        .await;
    let dir = ScratchDir::new(name);
    let event = dir.join("event.json");
    std::fs::write(&event, ec2_alarm(&instance, name).to_string()).expect("write");
    Scene {
        deployment,
        fleet,
        url,
        instance,
        event: event.display().to_string(),
        _event_dir: dir,
        _emulator: emulator,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_its_claim_the_attempt_is_finished_by_its_check_once() {
    let scene = started("crash-claim").await;

    invoke_and_kill_at(&scene.url, &scene.event, "before-action");

    assert!(
        scene.fleet.history(&scene.instance).await.is_empty(),
        "nothing done yet"
    );
    // The same event delivered again finds its claim: nothing is done twice.
    let again = json_of(&mut autoheal(
        &scene.url,
        &[
            "invoke",
            "--fire",
            "--event",
            &scene.event,
            "--output",
            "json",
        ],
    ));
    assert_eq!(again["decision"], "ignore", "{again:#}");
    assert_eq!(again["reason"], "duplicate", "{again:#}");
    assert!(scene.fleet.history(&scene.instance).await.is_empty());

    let fired = tick_until_done(&scene.url);

    let acted: Vec<&Value> = fired.iter().filter(|o| o["decision"] == "act").collect();
    assert_eq!(acted.len(), 1, "{fired:#?}");
    assert_eq!(acted[0]["record"]["status"], "completed", "{fired:#?}");
    assert_eq!(
        acted[0]["record"]["attempt"], 1,
        "the claimed attempt, resumed"
    );
    assert_eq!(
        scene.fleet.history(&scene.instance).await,
        ["stop", "start"]
    );
    assert!(
        !scene.deployment.follow_ups().await.is_empty()
            || fired.iter().any(|o| o["decision"] == "resolve"),
        "the incident is still followed up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_its_action_nothing_is_done_twice() {
    let scene = started("crash-action").await;

    invoke_and_kill_at(&scene.url, &scene.event, "after-action");

    assert_eq!(
        scene.fleet.history(&scene.instance).await,
        ["stop", "start"]
    );
    // The stop and start fixed the hardware fault, as it does on EC2.
    scene
        .fleet
        .tag_instance(&scene.instance, "emulator:system-status", "ok")
        .await;

    let fired = tick_until_done(&scene.url);

    assert_eq!(
        scene.fleet.history(&scene.instance).await,
        ["stop", "start"],
        "not stopped again: {fired:#?}"
    );
    assert!(
        fired.iter().all(|o| o["record"]["attempt"] != 2),
        "no second attempt: {fired:#?}"
    );
    // The resumed attempt looks before it acts, and finds nothing left to do.
    let resumed: Vec<&Value> = fired
        .iter()
        .filter(|o| o["record"]["attempt"] == 1)
        .collect();
    assert_eq!(resumed.len(), 1, "{fired:#?}");
    assert_eq!(resumed[0]["record"]["status"], "skipped");
    assert_eq!(resumed[0]["reason"], "not-needed");
    assert!(
        !scene.deployment.follow_ups().await.is_empty()
            || fired.iter().any(|o| o["decision"] == "resolve"),
        "the incident is still followed up"
    );
}

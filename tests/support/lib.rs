//! Test support: a local AWS emulator per test, SDK clients pointed at it, and fixtures.
//!
//! Every test starts its own emulator (moto in server mode) on a free 127.0.0.1 port and
//! stops it when the test ends, so tests share no state and may run in parallel. The
//! emulators are forked from one process that has imported moto already
//! (`tests/emulator/zygote.py`). Nothing here talks to anything but 127.0.0.1.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use chrono::{DateTime, Utc};
use serde_json::Value;

use autoheal_aws::{AwsFollowUps, DynamoStateStore, SnsNotifier};
use autoheal_core::{
    Clock, Engine, HealError, HealOutcome, HealRequest, Healer, HealingRecord, Layer, Outcome,
    RuleSet, Settings, SystemClock,
};
use autoheal_layers::LayerHealer;

pub mod accounts;
pub mod application;
pub mod cfn;
pub mod data;
pub mod faults;
pub mod iam;
pub mod network;
pub mod platform;
pub mod recorded;
pub mod runtime_api;
pub mod sent;

/// A directory of the test's own under the system's temporary one (`autoheal-<name>-<pid>`),
/// removed when dropped, so that a failing test leaves nothing behind either.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("autoheal-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the test's directory");
        Self(path)
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The first attempt's request of an incident for `rule` on `resource_id`, as the engine
/// hands it to a healer: for tests that call a healer directly.
pub fn first_attempt<'a>(
    rule: &'a autoheal_core::Rule,
    resource_id: &'a str,
    event: &'a autoheal_core::AlarmEvent,
    idempotency_token: &'a str,
) -> autoheal_core::HealRequest<'a> {
    autoheal_core::HealRequest {
        rule,
        resource_id,
        attempt: 1,
        incident_id: "incident-1",
        idempotency_token,
        event,
        alarm_actions: &[],
    }
}

/// The shipped rules with some lines of the file replaced, each `(from, to)` once; `from`
/// must be in the file (a test of a parameter the shipped file leaves commented out).
pub fn shipped_rules_with(edits: &[(&str, &str)]) -> RuleSet {
    let text = edits.iter().fold(
        autoheal_core::SHIPPED_RULES.to_owned(),
        |text, (from, to)| {
            assert!(text.contains(from), "`{from}` is not in the shipped rules");
            text.replacen(from, to, 1)
        },
    );
    RuleSet::from_toml(&text).unwrap_or_else(|e| panic!("the edited rules must load: {e}"))
}

/// Queues the replies the emulator's Lambda gives to the next invocations, in order (without
/// one it answers with the request it received).
pub fn queue_lambda_replies(emulator: &Emulator, replies: &[&str]) {
    let body = serde_json::json!({ "results": replies, "region": "us-east-1" }).to_string();
    emulator
        .request("POST", "/moto-api/static/lambda-simple/response", &body)
        .expect("queue the Lambda replies");
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> Value {
    let path = workspace().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `ec2-instance-healing` ALARM sample, aimed at `instance_id`, with event id `id`.
pub fn ec2_alarm(instance_id: &str, id: &str) -> Value {
    ec2_event("ec2-instance-healing.alarm.json", instance_id, id)
}

/// The name of `instance_id`'s status-check alarm (one per instance, as deployments have them).
pub fn ec2_alarm_name(instance_id: &str) -> String {
    format!("{instance_id}-system-status-check-failed")
}

/// The sample `file` aimed at `instance_id`, its alarm that instance's own.
fn ec2_event(file: &str, instance_id: &str, id: &str) -> Value {
    let mut event = sample_event(file);
    event["id"] = Value::from(id);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["InstanceId"] =
        Value::from(instance_id);
    let name = ec2_alarm_name(instance_id);
    event["resources"] = serde_json::json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    )]);
    event["detail"]["alarmName"] = Value::from(name);
    event
}

/// A sample event of `rule` (`alarm` or `ok`) with id `id` and the first metric's dimension
/// `dimension` set to `value`.
pub fn rule_event(rule: &str, state: &str, id: &str, dimension: &str, value: &str) -> Value {
    let mut event = sample_event(&format!("{rule}.{state}.json"));
    event["id"] = Value::from(id);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        [dimension] = Value::from(value);
    event
}

/// The matching OK event.
pub fn ec2_ok(instance_id: &str, id: &str) -> Value {
    ec2_event("ec2-instance-healing.ok.json", instance_id, id)
}

fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("AUTOHEAL_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let local = workspace().join(".venv/bin/moto_server");
    assert!(
        local.exists(),
        "the AWS emulator is not installed: run `make test` (it installs it into .venv), \
         or set AUTOHEAL_MOTO_SERVER to a moto_server executable"
    );
    local
}

fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// The shims every emulator has, applied in this order (see `Emulator::start`). Besides
/// DynamoDB's atomic writes, they add what every AWS account has and the actions read before
/// they act: CloudTrail's event history and ECS deployments that complete
/// (`rollback-lambda-alias`, `restart-ecs-service`), and read operations moto lacks
/// altogether (EBS volume status, Auto Scaling instance refreshes); the last keeps the log of
/// requests that the policy check reads.
const BASE_SHIMS: [&str; 6] = [
    "moto_dynamodb_atomic.py",
    "moto_cloudtrail_lookup_events.py",
    "moto_ecs_deployments.py",
    "moto_ebs_volume_status.py",
    "moto_autoscaling_instance_refresh.py",
    "moto_request_log.py",
];

/// The process the emulators are forked from (`tests/emulator/zygote.py`), started with the
/// first emulator. It ends with the test process: when its stdin closes, it stops every
/// emulator it started.
#[derive(Debug)]
struct Zygote {
    _process: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl Zygote {
    fn get() -> MutexGuard<'static, Zygote> {
        static ZYGOTE: OnceLock<Mutex<Zygote>> = OnceLock::new();
        ZYGOTE
            .get_or_init(|| Mutex::new(Zygote::spawn()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn() -> Self {
        let python = moto_server().with_file_name("python");
        let mut process = Command::new(python)
            .arg(workspace().join("tests/emulator/zygote.py"))
            .args(BASE_SHIMS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the emulator's zygote");
        let commands = process.stdin.take().expect("the zygote's stdin");
        let answers = BufReader::new(process.stdout.take().expect("the zygote's stdout"));
        Zygote {
            _process: process,
            commands,
            answers,
        }
    }

    /// One command and its answer; `None` when the zygote has gone.
    fn try_ask(&mut self, command: &str) -> Option<String> {
        writeln!(self.commands, "{command}").ok()?;
        self.commands.flush().ok()?;
        let mut answer = String::new();
        match self.answers.read_line(&mut answer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer.trim_end().to_owned()),
        }
    }

    fn ask(&mut self, command: &str) -> String {
        self.try_ask(command)
            .expect("the emulator's zygote ended (its error is above)")
    }

    fn start(&mut self, port: u16, shims: &[&str]) -> u32 {
        let answer = self.ask(&format!("start {port} {}", shims.join(" ")));
        answer
            .parse()
            .unwrap_or_else(|_| panic!("the emulator's zygote answered {answer:?}"))
    }

    fn alive(&mut self, pid: u32) -> bool {
        self.ask(&format!("alive {pid}")) == "yes"
    }

    /// Stops an emulator; also called while a failed test unwinds, so it never panics.
    fn stop(&mut self, pid: u32) {
        self.try_ask(&format!("stop {pid}"));
    }
}

/// One emulator process, stopped when dropped.
#[derive(Debug)]
pub struct Emulator {
    pid: u32,
    port: u16,
}

impl Emulator {
    /// Starts an emulator and waits until it answers. Every emulator has DynamoDB's atomic
    /// conditional writes, CloudTrail's event history of Lambda aliases, ECS deployments that
    /// roll out, EBS volume status and Auto Scaling instance refreshes (see `BASE_SHIMS` and
    /// `tests/emulator/`); the emulator serves CloudWatch in the SDK's Smithy RPC v2 CBOR
    /// protocol itself.
    pub fn start() -> Self {
        Self::start_with_shims(&[])
    }

    /// Starts the emulator with EventBridge's matching of pattern paths through arrays of
    /// objects, which moto lacks (see `tests/emulator/moto_eventbridge_arrays.py`).
    pub fn start_with_eventbridge_arrays() -> Self {
        Self::start_with_shim("moto_eventbridge_arrays.py")
    }

    /// Starts the emulator with Systems Manager's `DescribeInstanceInformation`, which moto
    /// lacks (see `tests/emulator/moto_ssm_instance_information.py`).
    pub fn start_with_ssm_instance_information() -> Self {
        Self::start_with_shim("moto_ssm_instance_information.py")
    }

    /// Starts the emulator with ECS task health read from the tag `emulator:health-status`,
    /// which moto lacks (see `tests/emulator/moto_ecs_task_health.py`).
    pub fn start_with_ecs_task_health() -> Self {
        Self::start_with_shim("moto_ecs_task_health.py")
    }

    /// Starts the emulator with EC2 status checks read from the tags `emulator:system-status`
    /// and `emulator:instance-status`, and each stop, start and reboot recorded in the tag
    /// `emulator:history` (see `tests/emulator/moto_ec2_status_checks.py`).
    pub fn start_with_ec2_status_checks() -> Self {
        Self::start_with_shim("moto_ec2_status_checks.py")
    }

    /// Starts the emulator with Route 53 health check observations read from the tag
    /// `emulator:health-status` (see `tests/emulator/moto_route53_health_status.py`).
    pub fn start_with_route53_health_status() -> Self {
        Self::start_with_shim("moto_route53_health_status.py")
    }

    /// Starts the emulator refusing, as EC2 does for a snapshot an AMI uses
    /// (`InvalidSnapshot.InUse`), to delete snapshots tagged `emulator:in-use-by` (see
    /// `tests/emulator/moto_snapshot_in_use.py`).
    pub fn start_with_snapshots_in_use() -> Self {
        Self::start_with_shim("moto_snapshot_in_use.py")
    }

    /// Starts the emulator through a script of `tests/emulator/` that adds to moto what it
    /// lacks, and changes nothing else.
    fn start_with_shim(script: &str) -> Self {
        Self::start_with_shims(&[script])
    }

    /// Starts the emulator with several scripts of `tests/emulator/` applied: each one's
    /// additions are loaded (not run as the server), then moto's server starts.
    pub fn start_with_shims(scripts: &[&str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = free_port();
            let pid = Zygote::get().start(port, scripts);
            let emulator = Emulator { pid, port };
            while Instant::now() < deadline {
                if emulator.answers() {
                    return emulator;
                }
                if !Zygote::get().alive(pid) {
                    break; // lost the port to someone else: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not start within 30 s"
            );
        }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Option<String> {
        self.request_with_headers(method, path, "", body)
    }

    /// A raw HTTP request; `headers` are more header lines, each ending with `\r\n`.
    fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> Option<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        // Any 2xx: the emulator answers a configuration change with 201 Created.
        response.starts_with("HTTP/1.1 2").then_some(response)
    }

    /// Sends a request to the emulator as an AWS service calling on the account's behalf: its
    /// User-Agent is the service's name (`codedeploy.amazonaws.com`), which is how CloudTrail
    /// records such a call, and it is signed for `signing_name` (`lambda`). What CodeDeploy
    /// does when it shifts an alias. Returns the response; panics unless it is 2xx.
    pub fn call_as_service(
        &self,
        service: &str,
        signing_name: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> String {
        let headers = format!(
            "User-Agent: {service}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{signing_name}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        );
        self.request_with_headers(method, path, &headers, body)
            .unwrap_or_else(|| panic!("{service}: {method} {path} was refused"))
    }

    fn answers(&self) -> bool {
        self.request("GET", "/moto-api/", "").is_some()
    }

    /// The requests the functions made, as this emulator recorded them (see [`recorded`]).
    pub fn function_requests(&self) -> Vec<recorded::Recorded> {
        let response = self
            .request("GET", recorded::LOG_PATH, "")
            .expect("the emulator's record of the functions' requests");
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        recorded::Recorded::parse(body)
    }

    /// What of the functions' requests their policies in `template.yaml` would deny.
    pub fn denied_function_requests(&self) -> Vec<String> {
        let records = self.function_requests();
        if records.is_empty() {
            return Vec::new();
        }
        recorded::violations(
            cfn::shared_template(),
            &recorded::emulator_stack(),
            &records,
        )
    }

    /// Lambda `Invoke` without Docker: the emulator answers with a canned reply instead of
    /// running the function.
    pub fn lambda_without_docker(&self) {
        self.request(
            "POST",
            "/moto-api/config",
            r#"{"lambda":{"use_docker":false}}"#,
        )
        .expect("configure the emulator's Lambda");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration for the emulator: static test credentials, fixed region.
    pub async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(autoheal_aws::config::https_client())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await
    }
}

impl Drop for Emulator {
    /// Stops the emulator; first, unless the test failed already, fails it if a function made
    /// a request its own policy in `template.yaml` would deny.
    fn drop(&mut self) {
        let denied = (!std::thread::panicking()).then(|| self.denied_function_requests());
        Zygote::get().stop(self.pid);
        if let Some(denied) = denied.filter(|denied| !denied.is_empty()) {
            panic!(
                "requests of the functions that their policy in template.yaml would deny:\n{}",
                denied.join("\n")
            );
        }
    }
}

/// The tags autoheal puts on a snapshot `rule` takes of `source` (a volume or DB instance).
pub fn autoheal_snapshot_tags<'a>(source: &'a str, rule: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("autoheal:managed", "true"),
        ("autoheal:snapshot-of", source),
        ("autoheal:rule", rule),
    ]
}

/// A manual snapshot `id` of the DB instance `db`, tagged `tags` (none: a person's snapshot).
pub async fn rds_snapshot(rds: &aws_sdk_rds::Client, db: &str, id: &str, tags: &[(&str, &str)]) {
    let mut create = rds
        .create_db_snapshot()
        .db_instance_identifier(db)
        .db_snapshot_identifier(id);
    for (key, value) in tags {
        create = create.tags(
            aws_sdk_rds::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build(),
        );
    }
    create.send().await.expect("create DB snapshot");
}

/// The ids of every DB snapshot in the account, manual and automated, of every instance.
pub async fn rds_snapshot_ids(rds: &aws_sdk_rds::Client) -> std::collections::BTreeSet<String> {
    rds.describe_db_snapshots()
        .send()
        .await
        .expect("describe DB snapshots")
        .db_snapshots()
        .iter()
        .filter_map(|s| s.db_snapshot_identifier().map(str::to_owned))
        .collect()
}

/// A clock the test moves.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(now)))
    }

    pub fn advance(&self, seconds: i64) {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::seconds(seconds);
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Wraps a healer and counts the actions it was asked to run, and the looks before them.
#[derive(Debug, Clone)]
pub struct Counting<H> {
    pub inner: H,
    pub calls: Arc<Mutex<u32>>,
    pub assessed: Arc<Mutex<u32>>,
}

impl<H> Counting<H> {
    pub fn new(inner: H) -> Self {
        Counting {
            inner,
            calls: Arc::new(Mutex::new(0)),
            assessed: Arc::new(Mutex::new(0)),
        }
    }

    pub fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    /// How often the healer was asked to look at a resource before a claim.
    pub fn assessed(&self) -> u32 {
        *self.assessed.lock().unwrap()
    }
}

impl<H: Healer + Sync> Healer for Counting<H> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }

    fn supports(&self, action: &autoheal_core::Action) -> bool {
        self.inner.supports(action)
    }

    async fn group(
        &self,
        request: HealRequest<'_>,
    ) -> Result<Option<autoheal_core::GroupView>, HealError> {
        self.inner.group(request).await
    }

    async fn assess(
        &self,
        request: HealRequest<'_>,
    ) -> Result<autoheal_core::Assessment, HealError> {
        *self.assessed.lock().unwrap() += 1;
        self.inner.assess(request).await
    }

    async fn is_gone(
        &self,
        rule: &autoheal_core::Rule,
        resource_id: &str,
    ) -> Result<bool, HealError> {
        self.inner.is_gone(rule, resource_id).await
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        *self.calls.lock().unwrap() += 1;
        self.inner.heal(request).await
    }

    async fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &autoheal_core::Revert,
    ) -> Result<HealOutcome, HealError> {
        self.inner.revert(request, revert).await
    }
}

/// A layer's engine as the tests build it: the real adapters and a counting real healer, its
/// alarm events sent by CloudWatch.
pub type TestEngine<C> =
    sent::Sent<Engine<DynamoStateStore, SnsNotifier, Counting<LayerHealer>, C, AwsFollowUps>>;

/// One notification as a subscriber receives it: the SNS envelope and the record it carries.
#[derive(Debug, Clone)]
pub struct Published {
    pub envelope: Value,
    pub record: Value,
}

impl Published {
    /// A message attribute (`layer`, `status`, `rule`, `kind`, `phase`).
    pub fn attribute(&self, name: &str) -> &Value {
        &self.envelope["MessageAttributes"][name]["Value"]
    }

    /// Checks the attributes a subscription filter would select on, and the record's own.
    #[track_caller]
    pub fn assert_about(&self, layer: &str, rule: &str, status: &str) {
        assert_eq!(self.attribute("layer"), layer, "{:#}", self.envelope);
        assert_eq!(self.attribute("rule"), rule, "{:#}", self.envelope);
        assert_eq!(self.attribute("status"), status, "{:#}", self.envelope);
        assert_eq!(self.record["rule"], rule, "{:#}", self.record);
        assert_eq!(self.record["status"], status, "{:#}", self.record);
    }
}

/// The state table and topic, as `autoheal bootstrap` creates them.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub sdk: SdkConfig,
    pub table: String,
    pub topic_arn: String,
}

pub const TABLE: &str = "autoheal-state";

/// The dead-letter queue the tests' deployment names to its follow-ups.
pub const DEAD_LETTER_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:autoheal-dead-letters";

impl Deployment {
    pub async fn bootstrap(emulator: &Emulator) -> Self {
        let sdk = emulator.sdk().await;
        let done = autoheal_aws::bootstrap::bootstrap(&sdk, TABLE, "autoheal-notifications")
            .await
            .expect("bootstrap");
        Deployment {
            sdk,
            table: done.table_name,
            topic_arn: done.topic_arn,
        }
    }

    /// The SDK configuration of `layer`'s function: the deployment's, signed as that function,
    /// so that the emulator checks its requests against its policy (see [`recorded`]).
    pub fn function_sdk(&self, layer: Layer) -> SdkConfig {
        self.sdk
            .to_builder()
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                recorded::function_credentials(layer),
            ))
            .build()
    }

    pub fn store(&self) -> DynamoStateStore {
        DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    /// `layer`'s engine as its Lambda function wires it (`build_engine`), with a counting
    /// real healer, the wall clock and default settings.
    pub fn layer(&self, layer: Layer) -> TestEngine<SystemClock> {
        self.layer_with(layer, SystemClock, Settings::default())
    }

    /// `layer`'s engine with `clock` and `settings`.
    pub fn layer_with<C: Clock>(
        &self,
        layer: Layer,
        clock: C,
        settings: Settings,
    ) -> TestEngine<C> {
        self.engine(
            layer,
            Counting::new(LayerHealer::new(layer, &self.function_sdk(layer))),
            clock,
            settings,
        )
    }

    /// The infrastructure engine with `clock` and `settings`.
    pub fn infrastructure<C: Clock>(&self, clock: C, settings: Settings) -> TestEngine<C> {
        self.layer_with(Layer::Infrastructure, clock, settings)
    }

    /// An engine of `layer` around `healer`, through the Lambda functions' own wiring; its
    /// alarm events are sent by CloudWatch (see [`sent`]).
    pub fn engine<H: Healer, C: Clock>(
        &self,
        layer: Layer,
        healer: H,
        clock: C,
        settings: Settings,
    ) -> sent::Sent<Engine<DynamoStateStore, SnsNotifier, H, C, AwsFollowUps>> {
        let config = self.function_config(layer, settings);
        let engine =
            autoheal_aws::build_engine_with_clock(config, &self.function_sdk(layer), healer, clock);
        sent::Sent::new(engine, &self.sdk)
    }

    /// `layer`'s function configuration in this deployment, with `settings` and the shipped
    /// rules, healing in its own account.
    pub fn function_config(
        &self,
        layer: Layer,
        settings: Settings,
    ) -> autoheal_aws::FunctionConfig {
        autoheal_aws::FunctionConfig {
            layer,
            table_name: self.table.clone(),
            topic_arn: self.topic_arn.clone(),
            settings,
            rules: RuleSet::shipped().expect("shipped rules").into(),
            // Undelivered follow-ups go to the deployment's dead-letter queue, as the stack's do.
            follow_ups: autoheal_aws::FollowUpTarget {
                dead_letter_arn: Some(DEAD_LETTER_ARN.to_owned()),
                ..autoheal_aws::FollowUpTarget::local(layer)
            },
            member_role: None,
        }
    }

    /// The one healing record stored today.
    pub async fn only_record(&self) -> HealingRecord {
        let records = self
            .store()
            .recent_records(1, Utc::now())
            .await
            .expect("records");
        assert_eq!(records.len(), 1, "{records:#?}");
        records.into_iter().next().expect("one record")
    }

    /// The one notification delivered to `queue` since it was last read.
    pub async fn only_notification(&self, queue: &str) -> Published {
        let mut notifications = self.notifications(queue).await;
        assert_eq!(notifications.len(), 1, "{notifications:#?}");
        let envelope = notifications.remove(0);
        let message: Value = serde_json::from_str(envelope["Message"].as_str().expect("a message"))
            .expect("a JSON message");
        Published {
            record: message["record"].clone(),
            envelope,
        }
    }

    /// How many items the state table holds.
    pub async fn item_count(&self) -> usize {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut pages = client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send();
        let mut count = 0;
        while let Some(item) = pages.next().await {
            item.expect("scan");
            count += 1;
        }
        count
    }

    /// Creates (or updates) the CloudWatch metric alarm `name` and sets it to `state`
    /// (`ALARM`, `OK`, `INSUFFICIENT_DATA`): what a follow-up reads back.
    pub async fn set_alarm(&self, name: &str, state: &str) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&self.sdk);
        let known = cloudwatch
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .expect("describe alarms")
            .metric_alarms()
            .iter()
            .any(|alarm| alarm.alarm_name() == Some(name));
        if !known {
            cloudwatch
                .put_metric_alarm()
                .alarm_name(name)
                .namespace("AWS/EC2")
                .metric_name("StatusCheckFailed_System")
                .statistic(Statistic::Maximum)
                .period(60)
                .evaluation_periods(2)
                .threshold(1.0)
                .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
                .send()
                .await
                .expect("put metric alarm");
        }
        cloudwatch
            .set_alarm_state()
            .alarm_name(name)
            .state_value(StateValue::from(state))
            .state_reason("set by the test")
            .send()
            .await
            .expect("set alarm state");
    }

    /// The follow-ups scheduled and due at `at`, earliest first, as EventBridge Scheduler
    /// would deliver them.
    pub async fn due_follow_ups(
        &self,
        at: DateTime<Utc>,
    ) -> Vec<autoheal_aws::followups::DueSchedule> {
        autoheal_aws::followups::due_schedules(&self.scheduler(), "default", at)
            .await
            .expect("due schedules")
    }

    /// Every follow-up scheduled, whenever due.
    pub async fn follow_ups(&self) -> Vec<autoheal_aws::followups::DueSchedule> {
        self.due_follow_ups(DateTime::<Utc>::MAX_UTC).await
    }

    /// Delivers the earliest follow-up to `engine` at its due time (moving `clock` there) and
    /// deletes its schedule, as `autoheal tick` does; `None` when none is scheduled.
    pub async fn fire_next<H: Healer>(
        &self,
        engine: &Engine<DynamoStateStore, SnsNotifier, H, TestClock, AwsFollowUps>,
        clock: &TestClock,
        run_id: &str,
    ) -> Option<Outcome> {
        let next = self.follow_ups().await.into_iter().next()?;
        Some(self.fire(engine, clock, next, run_id).await)
    }

    /// Delivers one follow-up to `engine` at its due time (or now, if later), then deletes
    /// its schedule, as EventBridge Scheduler does once it has delivered it.
    pub async fn fire<H: Healer>(
        &self,
        engine: &Engine<DynamoStateStore, SnsNotifier, H, TestClock, AwsFollowUps>,
        clock: &TestClock,
        schedule: autoheal_aws::followups::DueSchedule,
        run_id: &str,
    ) -> Outcome {
        clock.set(schedule.due_at.max(clock.now()));
        let outcome = engine
            .handle(schedule.payload, run_id)
            .await
            .expect("follow-up handled");
        autoheal_aws::followups::delete_schedule(&self.scheduler(), "default", &schedule.name)
            .await
            .expect("delete schedule");
        outcome
    }

    /// Deletes a follow-up's schedule without delivering it (one that a killed invocation
    /// was handling, say).
    pub async fn delete_follow_up(&self, name: &str) {
        autoheal_aws::followups::delete_schedule(&self.scheduler(), "default", name)
            .await
            .expect("delete schedule");
    }

    fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.sdk)
    }

    /// Subscribes a new SQS queue to the topic; returns the queue URL.
    pub async fn subscribe_queue(&self, name: &str) -> String {
        let (url, arn) = create_queue(&self.sdk, name).await;
        aws_sdk_sns::Client::new(&self.sdk)
            .subscribe()
            .topic_arn(&self.topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .expect("subscribe");
        url
    }

    /// Every SNS notification delivered to the queue so far (the SNS JSON envelopes).
    pub async fn notifications(&self, queue_url: &str) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut all = Vec::new();
        loop {
            let output = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for message in messages {
                let body: Value =
                    serde_json::from_str(message.body().unwrap_or("{}")).expect("SNS envelope");
                all.push(body);
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
    }
}

/// Creates an SQS queue; returns its URL and ARN.
pub async fn create_queue(sdk: &SdkConfig, name: &str) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut attributes| {
            attributes.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        })
        .expect("queue arn");
    (url, arn)
}

/// An EC2 fleet in the emulator.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl Fleet {
    pub fn new(sdk: &SdkConfig) -> Self {
        Fleet {
            ec2: aws_sdk_ec2::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
        }
    }

    /// The first availability zone of the fleet's region.
    fn zone(&self) -> String {
        let region = self
            .ec2
            .config()
            .region()
            .map_or("us-east-1", |r| r.as_ref());
        format!("{region}a")
    }

    pub async fn image(&self) -> String {
        self.ec2
            .describe_images()
            .send()
            .await
            .expect("images")
            .images()
            .first()
            .and_then(|image| image.image_id())
            .expect("an image")
            .to_owned()
    }

    /// A new VPC with one subnet; returns (vpc id, subnet id).
    pub async fn vpc_and_subnet(&self) -> (String, String) {
        let vpc = self
            .ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("vpc")
            .vpc
            .and_then(|vpc| vpc.vpc_id)
            .expect("vpc id");
        let subnet = self
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.0.1.0/24")
            .availability_zone(self.zone())
            .send()
            .await
            .expect("subnet")
            .subnet
            .and_then(|subnet| subnet.subnet_id)
            .expect("subnet id");
        (vpc, subnet)
    }

    /// A standalone `t3.small` instance in its own subnet and security group, with `tags`.
    pub async fn standalone(&self, tags: &[(&str, &str)]) -> String {
        self.standalone_of_type(aws_sdk_ec2::types::InstanceType::T3Small, tags)
            .await
    }

    /// A standalone instance of `instance_type` in its own subnet and security group.
    pub async fn standalone_of_type(
        &self,
        instance_type: aws_sdk_ec2::types::InstanceType,
        tags: &[(&str, &str)],
    ) -> String {
        self.standalone_fleet(instance_type, 1, tags)
            .await
            .into_iter()
            .next()
            .expect("instance id")
    }

    /// `count` standalone instances launched together, tagged `tags`; returns their ids.
    pub async fn standalone_fleet(
        &self,
        instance_type: aws_sdk_ec2::types::InstanceType,
        count: i32,
        tags: &[(&str, &str)],
    ) -> Vec<String> {
        let (vpc, subnet) = self.vpc_and_subnet().await;
        let group = self
            .ec2
            .create_security_group()
            .group_name("web")
            .description("web servers")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("security group")
            .group_id
            .expect("group id");
        let mut tag_spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Instance);
        // EC2 refuses an empty tag specification; every fixture instance has a name.
        let name = [("Name", "web")];
        let tags = if tags.is_empty() { &name[..] } else { tags };
        for (key, value) in tags {
            tag_spec = tag_spec.tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build(),
            );
        }
        self.ec2
            .run_instances()
            .image_id(self.image().await)
            .instance_type(instance_type)
            .subnet_id(subnet)
            .security_group_ids(group)
            .min_count(count)
            .max_count(count)
            .tag_specifications(tag_spec.build())
            .send()
            .await
            .expect("run instances")
            .instances()
            .iter()
            .filter_map(|instance| instance.instance_id())
            .map(str::to_owned)
            .collect()
    }

    /// Allocates an Elastic IP and associates it with `instance`; returns its allocation id.
    pub async fn elastic_ip(&self, instance: &str) -> String {
        let allocation = self
            .ec2
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .send()
            .await
            .expect("allocate")
            .allocation_id
            .expect("allocation id");
        self.ec2
            .associate_address()
            .allocation_id(&allocation)
            .instance_id(instance)
            .send()
            .await
            .expect("associate");
        allocation
    }

    /// An Auto Scaling group of one instance; returns (group name, instance id).
    pub async fn auto_scaling_group(&self, name: &str) -> (String, String) {
        let members = self.auto_scaling_group_of(name, 1).await;
        let instance = members.into_iter().next().expect("a group member");
        (name.to_owned(), instance)
    }

    /// The member passes its group's health check again. The emulator's group does not
    /// replace a member it is handed (a real group terminates it, and its alarm's next event
    /// names an instance that is gone): this lets a test's next attempt on the same member act.
    pub async fn passes_health_check(&self, instance: &str) {
        self.autoscaling
            .set_instance_health()
            .instance_id(instance)
            .health_status("Healthy")
            .send()
            .await
            .expect("mark healthy");
    }

    /// An Auto Scaling group of `size` instances; returns their ids.
    pub async fn auto_scaling_group_of(&self, name: &str, size: i32) -> Vec<String> {
        self.autoscaling
            .create_launch_configuration()
            .launch_configuration_name(format!("{name}-lc"))
            .image_id(self.image().await)
            .instance_type("t3.micro")
            .send()
            .await
            .expect("launch configuration");
        self.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_configuration_name(format!("{name}-lc"))
            .min_size(1)
            .max_size(size + 2)
            .desired_capacity(size)
            .availability_zones(self.zone())
            .send()
            .await
            .expect("auto scaling group");
        self.group(name)
            .await
            .instances()
            .iter()
            .filter_map(|instance| instance.instance_id())
            .map(str::to_owned)
            .collect()
    }

    /// A `size` GiB gp2 volume attached to `instance` at `device`, tagged `tags`.
    pub async fn attached_volume(
        &self,
        instance: &str,
        device: &str,
        tags: &[(&str, &str)],
    ) -> String {
        let zone = self
            .instance(instance)
            .await
            .placement()
            .and_then(|p| p.availability_zone().map(str::to_owned))
            .expect("the instance's zone");
        let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("Name")
                    .value("data")
                    .build(),
            );
        for (key, value) in tags {
            spec = spec.tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build(),
            );
        }
        let volume = self
            .ec2
            .create_volume()
            .availability_zone(zone)
            .size(20)
            .volume_type(aws_sdk_ec2::types::VolumeType::Gp2)
            .tag_specifications(spec.build())
            .send()
            .await
            .expect("create volume")
            .volume_id
            .expect("volume id");
        self.ec2
            .attach_volume()
            .volume_id(&volume)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .expect("attach volume");
        volume
    }

    /// A completed snapshot of `volume` tagged `tags` (none: a person's snapshot).
    pub async fn snapshot(&self, volume: &str, tags: &[(&str, &str)]) -> String {
        self.snapshot_described(volume, tags, None).await
    }

    /// A snapshot of `volume` as autoheal takes one: described as autoheal's at creation (what
    /// nobody can change afterwards), with `tags`.
    pub async fn snapshot_by_autoheal(&self, volume: &str, tags: &[(&str, &str)]) -> String {
        let description = format!("autoheal: {volume} before repair (incident test)");
        self.snapshot_described(volume, tags, Some(&description))
            .await
    }

    async fn snapshot_described(
        &self,
        volume: &str,
        tags: &[(&str, &str)],
        description: Option<&str>,
    ) -> String {
        let mut create = self
            .ec2
            .create_snapshot()
            .volume_id(volume)
            .set_description(description.map(str::to_owned));
        if !tags.is_empty() {
            let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot);
            for (key, value) in tags {
                spec = spec.tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(*key)
                        .value(*value)
                        .build(),
                );
            }
            create = create.tag_specifications(spec.build());
        }
        create
            .send()
            .await
            .expect("create snapshot")
            .snapshot_id
            .expect("snapshot id")
    }

    /// The ids of every snapshot of `volumes`.
    pub async fn snapshots_of(&self, volumes: &[&str]) -> std::collections::BTreeSet<String> {
        self.ec2
            .describe_snapshots()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("volume-id")
                    .set_values(Some(volumes.iter().map(|v| (*v).to_owned()).collect()))
                    .build(),
            )
            .send()
            .await
            .expect("describe snapshots")
            .snapshots()
            .iter()
            .filter_map(|s| s.snapshot_id().map(str::to_owned))
            .collect()
    }

    /// A snapshot's tags, as a map.
    pub async fn snapshot_tags(
        &self,
        snapshot: &str,
    ) -> std::collections::BTreeMap<String, String> {
        self.ec2
            .describe_snapshots()
            .snapshot_ids(snapshot)
            .send()
            .await
            .expect("describe snapshot")
            .snapshots()
            .first()
            .expect("the snapshot")
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect()
    }

    pub async fn volume(&self, id: &str) -> aws_sdk_ec2::types::Volume {
        self.ec2
            .describe_volumes()
            .volume_ids(id)
            .send()
            .await
            .expect("describe volumes")
            .volumes()
            .first()
            .cloned()
            .expect("the volume")
    }

    pub async fn group(&self, name: &str) -> aws_sdk_autoscaling::types::AutoScalingGroup {
        self.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("describe group")
            .auto_scaling_groups()
            .first()
            .cloned()
            .expect("the group")
    }

    /// Instances (not terminated) tagged as replacements of `original`.
    pub async fn replacements_of(&self, original: &str) -> Vec<String> {
        self.ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:autoheal:replaces")
                    .values(original)
                    .build(),
            )
            .send()
            .await
            .expect("describe")
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .filter(|instance| {
                instance.state().and_then(|state| state.name())
                    != Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
            })
            .filter_map(|instance| instance.instance_id().map(str::to_owned))
            .collect()
    }

    /// The value of the instance's tag `key`, if it has one.
    pub async fn instance_tag(&self, id: &str, key: &str) -> Option<String> {
        self.instance(id)
            .await
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(key))
            .and_then(|tag| tag.value().map(str::to_owned))
    }

    pub async fn tag_instance(&self, id: &str, key: &str, value: &str) {
        self.ec2
            .create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("create tags");
    }

    /// The stops, starts and reboots the instance went through, in order (emulator with
    /// `start_with_ec2_status_checks` only).
    pub async fn history(&self, id: &str) -> Vec<String> {
        self.instance_tag(id, "emulator:history")
            .await
            .map(|history| history.split(',').map(str::to_owned).collect())
            .unwrap_or_default()
    }

    pub async fn instance_state(&self, id: &str) -> Option<aws_sdk_ec2::types::InstanceStateName> {
        self.instance(id).await.state.and_then(|state| state.name)
    }

    pub async fn instance(&self, id: &str) -> aws_sdk_ec2::types::Instance {
        self.ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("describe")
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .next()
            .cloned()
            .expect("the instance")
    }

    pub async fn running_instance_count(&self) -> usize {
        self.ec2
            .describe_instances()
            .send()
            .await
            .expect("describe")
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .filter(|instance| {
                instance.state().and_then(|state| state.name())
                    == Some(&aws_sdk_ec2::types::InstanceStateName::Running)
            })
            .count()
    }
}

/// The path of a binary of this workspace's build (e.g. the `autoheal` CLI): next to the
/// running executable, or one level up from a test executable in `deps/`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|path| path.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} is not built (looked in {candidates:?}): run `make test` or `cargo build -p autoheal-cli`"
            )
        })
}

/// `template.yaml` as JSON, read with cfn-lint's CloudFormation YAML decoder.
pub fn template() -> Value {
    template_file("template.yaml")
}

/// The tools' Python (the emulator's environment, which holds cfn-lint).
pub fn tools_python() -> PathBuf {
    moto_server().with_file_name("python")
}

/// A template of the repository (`template.yaml`, `member.yaml`) as JSON, read with cfn-lint's
/// CloudFormation YAML decoder.
pub fn template_file(name: &str) -> Value {
    let output = Command::new(tools_python())
        .arg(workspace().join("tools/template_to_json.py"))
        .arg(workspace().join(name))
        .output()
        .expect("run tools/template_to_json.py");
    assert!(
        output.status.success(),
        "template_to_json.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the template as JSON")
}

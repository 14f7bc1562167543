//! The SDK's floor `make bench` measures the infrastructure function against: the requests
//! its acted reboot and the duplicate make (the boto3 baseline's list,
//! bench/baseline/infrastructure.py), with the same clients, SDK configuration and runtime,
//! and nothing else: no rules, no decision, no log. What an event costs the function beyond
//! this is autoheal's own; what this costs is the Rust SDK's, and bounds how far below boto3
//! the function's CPU time per event can go.
//!
//! For each event: `DescribeAlarms`; the group guard's `DescribeAutoScalingInstances`; the
//! look (`DescribeInstances`, `DescribeAutoScalingInstances`, `DescribeInstanceStatus`, and
//! `DescribeInstanceTypes` once per process); `CreateSchedule`; the claim
//! (`TransactWriteItems`: the event's claim, the state, the record, three budgets), refused
//! for a duplicate, which ends there. Then the look again, `RebootInstances`, the final
//! record with the lease's release (`TransactWriteItems`) and `Publish`. The items and
//! messages have the baseline's fields; `make bench` lists each implementation's requests
//! by operation, which shows they are the function's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use autoheal_c_math as _;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use aws_sdk_sns::types::MessageAttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

const LAYER: &str = "infrastructure";
const RULE: &str = "ec2-instance-healing";
const ACTION: &str = "recover-ec2-instance";
/// The baseline's budgets: (scope, actions, window seconds).
const BUDGETS: [(&str, i64, i64); 3] = [
    ("rule#ec2-instance-healing", 5, 900),
    ("layer#infrastructure", 10, 900),
    ("global", 20, 900),
];

/// The clients the function builds at init, and the settings the requests name.
#[derive(Debug)]
struct Requests {
    dynamodb: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
    scheduler: aws_sdk_scheduler::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    ec2: aws_sdk_ec2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    table: String,
    topic_arn: String,
    schedule_group: String,
    scheduler_role_arn: String,
    function_arn: String,
    /// The instance types described so far (once per process, as the function does).
    described_types: Mutex<HashSet<String>>,
}

/// What the requests need from an alarm event.
struct Alarm {
    id: String,
    name: String,
    arn: String,
    instance_id: String,
}

impl Alarm {
    fn of(event: &Value) -> Result<Alarm, Error> {
        let text = |value: &Value, what: &str| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::from(format!("the event has no {what}")))
        };
        let detail = &event["detail"];
        Ok(Alarm {
            id: text(&event["id"], "id")?,
            name: text(&detail["alarmName"], "alarm name")?,
            arn: text(&event["resources"][0], "alarm ARN")?,
            instance_id: text(
                &detail["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["InstanceId"],
                "InstanceId dimension",
            )?,
        })
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

impl Requests {
    async fn handle(&self, event: &Value, run_id: &str) -> Result<Value, Error> {
        let alarm = Alarm::of(event)?;
        let id = alarm.instance_id.as_str();
        let now = Utc::now();
        let mut record = BTreeMap::from([
            ("id", run_id.to_owned()),
            ("event_id", alarm.id.clone()),
            ("alarm_name", alarm.name.clone()),
            ("rule", RULE.to_owned()),
            ("layer", LAYER.to_owned()),
            ("action", ACTION.to_owned()),
            ("resource_id", id.to_owned()),
            ("mode", "enforce".to_owned()),
            ("started_at", iso(now)),
            ("status", "in_progress".to_owned()),
            ("attempt", "1".to_owned()),
            ("incident_id", alarm.id.clone()),
        ]);
        self.cloudwatch
            .describe_alarms()
            .alarm_names(&alarm.name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await?;
        self.autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await?;
        self.look(id).await?;
        let next_attempt = now + Duration::seconds(600);
        self.schedule(&alarm, next_attempt).await?;
        let resource = format!("RESOURCE#{RULE}#{id}");
        if !self.claim(&resource, &alarm, run_id, &record, now).await? {
            return Ok(json!({"decision": "ignore", "reason": "duplicate"}));
        }
        self.look(id).await?;
        self.ec2.reboot_instances().instance_ids(id).send().await?;
        let summary = format!(
            "rebooted {id} (instance status check impaired, system status check ok); a later attempt stops and starts it"
        );
        record.insert("status", "completed".to_owned());
        record.insert("summary", summary.clone());
        record.insert("ended_at", iso(Utc::now()));
        self.finish(&resource, run_id, &record).await?;
        self.publish(&record).await?;
        Ok(json!({"decision": "act", "detail": summary, "record": record}))
    }

    /// The healer's read-only look: the instance, its group, its status and, once per process,
    /// its type.
    async fn look(&self, id: &str) -> Result<(), Error> {
        let found = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await?;
        let instance_type = found
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find_map(|instance| instance.instance_type())
            .map(|kind| kind.as_str().to_owned())
            .ok_or_else(|| Error::from(format!("EC2 does not know {id}")))?;
        self.autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(id)
            .send()
            .await?;
        self.ec2
            .describe_instance_status()
            .instance_ids(id)
            .include_all_instances(true)
            .send()
            .await?;
        let described = self
            .described_types
            .lock()
            .map_err(|_| Error::from("a request panicked"))?
            .contains(&instance_type);
        if !described {
            self.ec2
                .describe_instance_types()
                .instance_types(instance_type.as_str().into())
                .send()
                .await?;
            self.described_types
                .lock()
                .map_err(|_| Error::from("a request panicked"))?
                .insert(instance_type);
        }
        Ok(())
    }

    async fn schedule(&self, alarm: &Alarm, at: DateTime<Utc>) -> Result<(), Error> {
        let check = json!({
            "version": "0",
            "id": format!("{}#check-1", alarm.id),
            "source": "autoheal",
            "detail-type": "autoheal.check",
            "detail": {
                "alarm": {"alarm_name": alarm.name, "alarm_arn": alarm.arn, "id": alarm.id, "state": "ALARM"},
                "check": 1,
                "incident_id": alarm.id,
                "layer": LAYER,
                "resource_id": alarm.instance_id,
                "rule": RULE,
            },
        });
        let created = self
            .scheduler
            .create_schedule()
            .name(format!("autoheal-{}-1", alarm.id.replace('-', "")))
            .group_name(&self.schedule_group)
            .schedule_expression(format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder()
                    .mode(FlexibleTimeWindowMode::Off)
                    .build()?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .description(format!(
                "autoheal check 1 of {RULE} on {}",
                alarm.instance_id
            ))
            .target(
                Target::builder()
                    .arn(&self.function_arn)
                    .role_arn(&self.scheduler_role_arn)
                    .input(check.to_string())
                    .retry_policy(
                        RetryPolicy::builder()
                            .maximum_event_age_in_seconds(3600)
                            .maximum_retry_attempts(20)
                            .build(),
                    )
                    .build()?,
            )
            .send()
            .await;
        match created {
            // Scheduled by an earlier delivery: that schedule stands.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    fn record_item(&self, record: &BTreeMap<&str, String>) -> HashMap<String, AttributeValue> {
        let started = record.get("started_at").cloned().unwrap_or_default();
        let mut stored = item([
            (
                "pk",
                s(format!("RUNS#{}", started.get(..10).unwrap_or_default())),
            ),
            (
                "sk",
                s(format!(
                    "{started}#{}",
                    record.get("id").cloned().unwrap_or_default()
                )),
            ),
            ("item_type", s("healing-record")),
            (
                "expires_at",
                n((Utc::now() + Duration::days(90)).timestamp()),
            ),
        ]);
        for (key, value) in record {
            stored.insert((*key).to_owned(), s(value));
        }
        stored
    }

    /// The run's record, written whole.
    fn record_put(&self, record: &BTreeMap<&str, String>) -> Result<TransactWriteItem, Error> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(record)))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The claim on nothing stored; `false` when the event was claimed before.
    async fn claim(
        &self,
        resource: &str,
        alarm: &Alarm,
        run_id: &str,
        record: &BTreeMap<&str, String>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let at = iso(now);
        let nothing_stored = |stored: HashMap<String, AttributeValue>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(stored))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
        };
        let incident = item([
            ("id", s(&alarm.id)),
            ("opened_at", s(&at)),
            ("last_attempt_at", s(&at)),
            ("next_attempt_at", s(iso(now + Duration::seconds(600)))),
            ("attempts", n(1)),
            ("checks", n(1)),
            ("unfinished", AttributeValue::Bool(true)),
        ]);
        let lease = item([
            ("run_id", s(run_id)),
            ("event_id", s(&alarm.id)),
            ("attempt", n(1)),
            ("expires_at", s(iso(now + Duration::seconds(900)))),
        ]);
        let state = item([
            ("pk", s(resource)),
            ("sk", s("STATE")),
            ("item_type", s("resource-state")),
            ("rule", s(RULE)),
            ("resource_id", s(&alarm.instance_id)),
            ("version", n(1)),
            ("last_action_at", s(&at)),
            ("incident", AttributeValue::M(incident)),
            ("lease", AttributeValue::M(lease)),
            ("updated_at", s(&at)),
            ("expires_at", n((now + Duration::days(90)).timestamp())),
        ]);
        let claim = item([
            ("pk", s(resource)),
            ("sk", s(format!("EVENT#{}", alarm.id))),
            ("item_type", s("event-claim")),
            ("run_id", s(run_id)),
            ("claimed_at", s(&at)),
            ("expires_at", n((now + Duration::days(7)).timestamp())),
        ]);
        let mut items = vec![
            TransactWriteItem::builder()
                .put(nothing_stored(claim)?)
                .build(),
            TransactWriteItem::builder()
                .put(nothing_stored(state)?)
                .build(),
            self.record_put(record)?,
        ];
        for (scope, cap, seconds) in BUDGETS {
            let current = now.timestamp() / seconds * seconds;
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(format!("BUDGET#{scope}")))
                            .key("sk", s(format!("WINDOW#{current}")))
                            .update_expression("ADD #n :one SET #expires = :expires")
                            .condition_expression("attribute_not_exists(#n) OR #n < :cap")
                            .expression_attribute_names("#n", "actions")
                            .expression_attribute_names("#expires", "expires_at")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(cap))
                            .expression_attribute_values(
                                ":expires",
                                n(current + 2 * seconds + 86_400),
                            )
                            .build()?,
                    )
                    .build(),
            );
            items.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .key("pk", s(format!("BUDGET#{scope}")))
                            .key("sk", s(format!("WINDOW#{}", current - seconds)))
                            .condition_expression("attribute_not_exists(#n) OR #n <= :previous")
                            .expression_attribute_names("#n", "actions")
                            .expression_attribute_values(":previous", n(0))
                            .build()?,
                    )
                    .build(),
            );
        }
        let claimed = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(run_id)
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The final record and the lease's release.
    async fn finish(
        &self,
        resource: &str,
        run_id: &str,
        record: &BTreeMap<&str, String>,
    ) -> Result<(), Error> {
        let release = Update::builder()
            .table_name(&self.table)
            .key("pk", s(resource))
            .key("sk", s("STATE"))
            .update_expression(
                "REMOVE #lease, #incident.#unfinished SET #version = #version + :one",
            )
            .condition_expression("#lease.#run_id = :run_id")
            .expression_attribute_names("#lease", "lease")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#incident", "incident")
            .expression_attribute_names("#unfinished", "unfinished")
            .expression_attribute_values(":run_id", s(run_id))
            .expression_attribute_values(":one", n(1))
            .build()?;
        self.dynamodb
            .transact_write_items()
            .transact_items(self.record_put(record)?)
            .transact_items(TransactWriteItem::builder().update(release).build())
            .send()
            .await?;
        Ok(())
    }

    async fn publish(&self, record: &BTreeMap<&str, String>) -> Result<(), Error> {
        let message = json!({
            "kind": "healing",
            "record": record,
            "max_attempts": 3,
            "description": "Recover an EC2 instance whose status checks fail",
        });
        let field = |key: &str| record.get(key).map_or("", String::as_str);
        let mut publish = self
            .sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(format!(
                "autoheal {}: {LAYER} {ACTION} on {}",
                field("status"),
                field("resource_id")
            ))
            .message(serde_json::to_string_pretty(&message)?);
        for (key, value) in [
            ("layer", LAYER),
            ("status", field("status")),
            ("rule", RULE),
            ("kind", "healing"),
            ("phase", "heal"),
        ] {
            publish = publish.message_attributes(
                key,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()?,
            );
        }
        publish.send().await?;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = autoheal_aws::config::lambda_sdk_from_env();
    let setting =
        |name: &str| std::env::var(name).map_err(|_| Error::from(format!("{name} is not set")));
    let requests: &'static Requests = Box::leak(Box::new(Requests {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sns: aws_sdk_sns::Client::new(&sdk),
        scheduler: aws_sdk_scheduler::Client::new(&sdk),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        ec2: aws_sdk_ec2::Client::new(&sdk),
        autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
        table: setting("AUTOHEAL_TABLE_NAME")?,
        topic_arn: setting("AUTOHEAL_TOPIC_ARN")?,
        schedule_group: setting("AUTOHEAL_SCHEDULE_GROUP")?,
        scheduler_role_arn: setting("AUTOHEAL_SCHEDULER_ROLE_ARN")?,
        function_arn: setting("AUTOHEAL_FUNCTION_ARN")?,
        described_types: Mutex::default(),
    }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        requests
            .handle(&event.payload, &event.context.request_id)
            .await
    }))
    .await
}

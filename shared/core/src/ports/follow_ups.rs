//! The closed loop's port: schedule a follow-up, and read an alarm back when it fires.

use std::future::Future;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::policy::followup::{AlarmReading, FollowUp};
use crate::policy::genuine::AlarmDefinition;

/// A failure to schedule a follow-up or to read an alarm back. Retrying the whole event is
/// safe.
#[derive(Debug, thiserror::Error)]
#[error("follow-up: {message}")]
pub struct FollowUpError {
    pub message: String,
}

/// The closed loop's two halves: schedule a follow-up, and read an alarm back when it fires.
pub trait FollowUps {
    /// Schedules `follow_up` to be delivered to its layer's function at `at`. Scheduling the
    /// same check twice is not an error: the first schedule stands.
    fn schedule(
        &self,
        follow_up: &FollowUp,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), FollowUpError>> + Send;

    /// The alarm's state now; `None` when CloudWatch does not know it.
    fn read_alarm(
        &self,
        alarm_name: &str,
    ) -> impl Future<Output = Result<Option<AlarmReading>, FollowUpError>> + Send;

    /// The alarm as CloudWatch holds it now, with the actions it takes itself when it goes
    /// into ALARM; `None` when CloudWatch does not know it.
    fn describe_alarm(
        &self,
        alarm_name: &str,
    ) -> impl Future<Output = Result<Option<AlarmNow>, FollowUpError>> + Send;

    /// The tags of the alarm `alarm_arn`, to hold an event's tags to.
    fn alarm_tags(
        &self,
        alarm_arn: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, FollowUpError>> + Send;
}

/// An alarm as CloudWatch holds it now.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmNow {
    pub reading: AlarmReading,
    /// The actions the alarm takes itself when it goes into ALARM (ARNs such as
    /// `arn:aws:automate:<region>:ec2:recover`).
    pub actions: Vec<String>,
    /// What it watches and how.
    pub definition: AlarmDefinition,
    /// Its ARN, to read its tags by.
    pub arn: Option<String>,
}

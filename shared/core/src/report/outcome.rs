//! What happened to one event: the verdict and the outcome the engine reports, printed by
//! the command line and returned by the Lambda function, logged and measured.

use serde::Serialize;

use crate::model::event::{AlarmEvent, AlarmState};
use crate::model::layer::Layer;
use crate::model::record::{HealingRecord, SkipReason};
use crate::model::rules::{Mode, Rule};
use crate::policy::resolve::NotSelected;

/// What the engine did with an event, as the outcome reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The rule's action ran (or, in shadow mode, would have: see the reason).
    Act,
    /// Nothing was done, for the reason given (recorded when the event got that far).
    Skip,
    /// OK on an open incident: it closes once OK holds for the stable period.
    Recovering,
    /// OK, and the changes earlier heals made were put back (or tried).
    Revert,
    /// A follow-up found the alarm OK for the stable period: the incident is resolved.
    Resolve,
    /// A follow-up could not conclude yet and scheduled the next check.
    Recheck,
    /// Nothing to do and nothing recorded (OK without an incident, INSUFFICIENT_DATA, a
    /// duplicate OK).
    Ignore,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Act => "act",
            Verdict::Skip => "skip",
            Verdict::Recovering => "recovering",
            Verdict::Revert => "revert",
            Verdict::Resolve => "resolve",
            Verdict::Recheck => "recheck",
            Verdict::Ignore => "ignore",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one event: printed by the CLI, returned by the Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub layer: Option<Layer>,
    pub event_id: String,
    pub alarm_name: String,
    pub alarm_state: AlarmState,
    pub decision: Verdict,
    pub rule: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub mode: Option<Mode>,
    pub reason: Option<SkipReason>,
    pub detail: Option<String>,
    /// This run sent its incident's escalation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub escalated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<HealingRecord>,
}

impl Outcome {
    pub(crate) fn new(layer: Option<Layer>, event: &AlarmEvent) -> Self {
        Outcome {
            layer,
            event_id: event.id.clone(),
            alarm_name: event.alarm_name.clone(),
            alarm_state: event.state,
            decision: Verdict::Skip,
            rule: None,
            resource_id: None,
            action: None,
            mode: None,
            reason: None,
            detail: None,
            escalated: false,
            record: None,
        }
    }

    pub(crate) fn with_rule(mut self, rule: &Rule) -> Self {
        self.rule = Some(rule.name.clone());
        self.action = Some(rule.action.kind().to_owned());
        self.mode = Some(rule.mode);
        self
    }

    pub(crate) fn not_selected(self, not_selected: NotSelected<'_>) -> Self {
        let outcome = match not_selected.rule {
            Some(rule) => self.with_rule(rule),
            None => self,
        };
        outcome.skipped(not_selected.reason, not_selected.detail)
    }

    /// The run's record, with its reason and what it did (or the error).
    pub(crate) fn with_record(mut self, record: HealingRecord) -> Self {
        self.reason = record.skip_reason;
        self.detail = record.summary.clone().or(record.error.clone());
        self.record = Some(record);
        self
    }

    pub(crate) fn skipped(mut self, reason: SkipReason, detail: impl Into<String>) -> Self {
        self.decision = Verdict::Skip;
        self.reason = Some(reason);
        self.detail = Some(detail.into());
        self
    }
}

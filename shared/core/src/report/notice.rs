//! What a notification says: a readable subject, a JSON body with the record's fields, and
//! attributes that subscription filters can select on.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::record::{HealingRecord, RunPhase};
use crate::model::rules::{Mode, Rule};
use crate::model::trip::{TripKind, Tripped};

/// The kind of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// A healing run ended (completed, failed, or skipped after its claim).
    Healing,
    /// An incident used all its attempts and the alarm is still on, or a change a heal made
    /// could not be put back in all its tries: a human is needed.
    Escalation,
    /// A budget of actions is spent: heals are deferred (one notice per budget and window).
    Budget,
    /// A group guard holds heals back: too much of a group in healing, or unhealthy (one
    /// notice per group, guard and window).
    GroupGuard,
    /// A heal waits for AWS's own healing of the resource, or for a person's hold on it (one
    /// notice per resource, reason and window).
    Waiting,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub record: HealingRecord,
    pub max_attempts: u32,
    pub description: String,
    /// For an escalation: every record of the incident, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HealingRecord>,
}

/// SNS limits subjects to 100 printable ASCII characters.
const SUBJECT_LIMIT: usize = 100;

impl Notice {
    pub fn healing(record: HealingRecord, rule: &Rule) -> Self {
        Notice {
            kind: NoticeKind::Healing,
            record,
            max_attempts: rule.policy.max_attempts,
            description: rule.description.clone(),
            history: Vec::new(),
        }
    }

    pub fn escalation(record: HealingRecord, rule: &Rule) -> Self {
        Notice {
            kind: NoticeKind::Escalation,
            record,
            max_attempts: rule.policy.max_attempts,
            description: rule.description.clone(),
            history: Vec::new(),
        }
    }

    /// The incident's records so far, for a person who takes over.
    pub fn with_history(mut self, history: Vec<HealingRecord>) -> Self {
        self.history = history;
        self
    }

    /// The first deferral of a budget's or a group guard's window.
    pub fn deferral(record: HealingRecord, rule: &Rule, tripped: &Tripped) -> Self {
        let kind = match tripped.kind {
            TripKind::Budget => NoticeKind::Budget,
            TripKind::GroupBusy { .. } | TripKind::GroupStorm { .. } => NoticeKind::GroupGuard,
            TripKind::ResourceBusy | TripKind::Waiting { .. } => NoticeKind::Waiting,
        };
        Notice {
            kind,
            ..Notice::healing(record, rule)
        }
    }

    pub fn subject(&self) -> String {
        let r = &self.record;
        let text = match self.kind {
            NoticeKind::Healing => match r.phase {
                RunPhase::Heal => format!(
                    "autoheal {}: {} {} on {}",
                    r.status, r.layer, r.action, r.resource_id
                ),
                RunPhase::Revert => format!(
                    "autoheal {}: {} revert of {} on {}",
                    r.status, r.layer, r.action, r.resource_id
                ),
                RunPhase::Verify => format!(
                    "autoheal resolved: {} on {} after {} attempt(s)",
                    r.rule, r.resource_id, r.attempt
                ),
                RunPhase::Reset => format!(
                    "autoheal reset: {} on {} closed by an operator",
                    r.rule, r.resource_id
                ),
            },
            // A revert (or a resolution's put-back) that used its last try.
            NoticeKind::Escalation if matches!(r.phase, RunPhase::Revert | RunPhase::Verify) => {
                format!(
                    "autoheal ESCALATION: {} could not put back its changes on {}",
                    r.rule, r.resource_id
                )
            }
            NoticeKind::Escalation => format!(
                "autoheal ESCALATION: {} gave up on {} after {} attempts",
                r.rule, r.resource_id, self.max_attempts
            ),
            NoticeKind::Budget => format!(
                "autoheal BUDGET spent: heals deferred (first: {} on {})",
                r.rule, r.resource_id
            ),
            NoticeKind::GroupGuard => format!(
                "autoheal GROUP GUARD: heals in {} deferred (first: {} on {})",
                r.details.get("group").map_or("a group", String::as_str),
                r.rule,
                r.resource_id
            ),
            NoticeKind::Waiting => format!(
                "autoheal waiting ({}): {} on {}",
                r.skip_reason.map_or("deferred", |reason| reason.as_str()),
                r.rule,
                r.resource_id
            ),
        };
        let text = match r.mode {
            Mode::Shadow => format!("[shadow] {text}"),
            Mode::Enforce => text,
        };
        let printable: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if printable.len() <= SUBJECT_LIMIT {
            printable
        } else {
            format!("{}...", &printable[..SUBJECT_LIMIT - 3])
        }
    }

    /// The JSON body.
    pub fn message(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|error| {
            format!("{{\"kind\":\"{:?}\",\"error\":\"{error}\"}}", self.kind)
        })
    }

    /// Message attributes for SNS subscription filter policies.
    pub fn attributes(&self) -> BTreeMap<&'static str, String> {
        let r = &self.record;
        let mut attributes = BTreeMap::new();
        attributes.insert("layer", r.layer.as_str().to_owned());
        attributes.insert("status", r.status.as_str().to_owned());
        attributes.insert("rule", r.rule.clone());
        attributes.insert("phase", r.phase.as_str().to_owned());
        // Where the resource lives: an organization's notices can be routed per account.
        if let Some(account) = &r.account {
            attributes.insert("account", account.clone());
        }
        if let Some(region) = &r.region {
            attributes.insert("region", region.clone());
        }
        attributes.insert(
            "kind",
            match self.kind {
                NoticeKind::Healing => "healing",
                NoticeKind::Escalation => "escalation",
                NoticeKind::Budget => "budget",
                NoticeKind::GroupGuard => "group-guard",
                NoticeKind::Waiting => "waiting",
            }
            .to_owned(),
        );
        attributes
    }
}

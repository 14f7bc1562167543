//! The healer: a layer's actions against the workload, what it is asked, what it answers,
//! and what it finds when it looks at a resource before autoheal claims it.

use std::collections::BTreeMap;
use std::future::Future;

use crate::model::event::AlarmEvent;
use crate::model::layer::Layer;
use crate::model::record::SkipReason;
use crate::model::revert::Revert;
use crate::model::rules::{Action, Rule};
pub use crate::model::trip::WaitReason;
use crate::policy::group::GroupView;

/// What a healer is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct HealRequest<'a> {
    pub rule: &'a Rule,
    /// Never empty nor ambiguous: the resolver skips such alarms before any healer runs.
    pub resource_id: &'a str,
    pub attempt: u32,
    pub incident_id: &'a str,
    /// The same for every retry of this attempt: pass it where the API takes one.
    pub idempotency_token: &'a str,
    pub event: &'a AlarmEvent,
    /// The alarm's ALARM actions (their ARNs) as CloudWatch describes the alarm now, e.g. an
    /// `arn:aws:automate:<region>:ec2:recover` action that has AWS recover the instance
    /// itself; empty when autoheal has not read the alarm.
    pub alarm_actions: &'a [String],
}

/// What a healer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealOutcome {
    /// The action ran; `details` names what it created or changed, `reverts` what to put
    /// back when the incident resolves (empty when nothing is to be undone).
    Healed {
        summary: String,
        details: BTreeMap<String, String>,
        reverts: Vec<Revert>,
    },
    /// A fresh look at the resource showed the action should not run.
    Skipped { reason: SkipReason, summary: String },
    /// The action is under way and its next step waits on AWS (a snapshot being taken, an
    /// instance being restored): autoheal calls `heal` again for the same attempt, with the
    /// same idempotency token, in a follow-up `resume_after_seconds` from now. Each step
    /// looks at what earlier ones left (by names derived from the token) and never repeats
    /// one, so no invocation waits long and a crash between steps resumes where it stopped.
    Continuing {
        summary: String,
        details: BTreeMap<String, String>,
        resume_after_seconds: u64,
    },
}

/// Something else is healing the resource, or a person holds it: what was seen, and when to
/// look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub reason: WaitReason,
    /// What was seen, in one sentence (recorded and shown by `explain` and `history`).
    pub summary: String,
    /// When to look again, from now.
    pub recheck_after_seconds: u64,
}

/// What a healer finds when it looks at the resource before autoheal claims it for a new
/// attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Nothing else is healing the resource and nobody holds it: the attempt may go ahead
    /// (the action still re-reads the resource and skips what is no longer needed).
    Proceed,
    /// Wait: the attempt is deferred, not counted.
    Wait(Wait),
    /// The resource does not exist: nothing to heal, no budget spent, no failure notice.
    Gone { summary: String },
}

impl Assessment {
    /// AWS's own healing is under way: look again after `recheck_after_seconds`.
    pub fn aws_healing(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::AwsHealing,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// A person holds the resource: look again after `recheck_after_seconds`.
    pub fn operator_hold(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::OperatorHold,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// Another autoheal run works on a resource this action touches: look again after
    /// `recheck_after_seconds`.
    pub fn resource_busy(summary: impl Into<String>, recheck_after_seconds: u64) -> Self {
        Assessment::Wait(Wait {
            reason: WaitReason::ResourceBusy,
            summary: summary.into(),
            recheck_after_seconds,
        })
    }

    /// The resource does not exist.
    pub fn gone(summary: impl Into<String>) -> Self {
        Assessment::Gone {
            summary: summary.into(),
        }
    }
}

/// An action that failed; the message is the service's own where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HealError {
    pub message: String,
}

impl HealError {
    pub fn new(message: impl Into<String>) -> Self {
        HealError {
            message: message.into(),
        }
    }

    /// `layer`'s healer was handed an action of another layer.
    pub fn unsupported(layer: Layer, action: &Action) -> Self {
        HealError::new(format!(
            "the {layer} function does not implement `{}`",
            action.kind()
        ))
    }

    /// `layer`'s healer was handed a revert it does not know (stored by another version).
    pub fn unknown_revert(layer: Layer, revert: &Revert) -> Self {
        HealError::new(format!(
            "the {layer} function has no revert `{}`",
            revert.kind
        ))
    }
}

impl HealOutcome {
    /// The action ran and left nothing to put back.
    pub fn healed(summary: impl Into<String>, details: BTreeMap<String, String>) -> Self {
        HealOutcome::Healed {
            summary: summary.into(),
            details,
            reverts: Vec::new(),
        }
    }
}

/// Runs a layer's actions against the workload.
pub trait Healer {
    /// The layer whose actions this healer runs.
    fn layer(&self) -> Layer;

    /// Whether this healer implements the action: every action of its layer.
    fn supports(&self, action: &Action) -> bool {
        action.layer() == self.layer()
    }

    /// The group the resource is a member of, read live (size and unhealthy members), when
    /// the action heals one member of a group; `None` when it is in none, or when the
    /// action guards a whole group itself. The safety governor asks before every new
    /// attempt (see [`crate::policy::group`]).
    fn group(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<Option<GroupView>, HealError>> + Send {
        let _ = request;
        async { Ok(None) }
    }

    /// Looks at the resource, read-only, before autoheal claims it for a new attempt (not for
    /// a resumed step or a takeover): whether it still exists, and whether AWS's own healing
    /// or a person's hold is on it (see [`Assessment`]). Asked after the budgets and before
    /// the group guard. Healers with nothing to wait for keep this default.
    fn assess(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<Assessment, HealError>> + Send {
        let _ = request;
        async { Ok(Assessment::Proceed) }
    }

    /// Whether the resource no longer exists (terminated, deleted, replaced by its group).
    /// Asked when a follow-up finds the alarm without data or gone, as an alarm on a vanished
    /// resource is: a resource that is gone has nothing left to heal, and its incident
    /// resolves instead of waiting for data that never comes. Healers that cannot tell keep
    /// this default.
    fn is_gone(
        &self,
        rule: &Rule,
        resource_id: &str,
    ) -> impl Future<Output = Result<bool, HealError>> + Send {
        let _ = (rule, resource_id);
        async { Ok(false) }
    }

    /// Re-reads the resource's live state and, if healing is still needed and safe, acts.
    fn heal(
        &self,
        request: HealRequest<'_>,
    ) -> impl Future<Output = Result<HealOutcome, HealError>> + Send;

    /// Puts back one change an earlier heal reported in `HealOutcome::Healed::reverts`, after
    /// checking that it is still autoheal's to put back (nobody changed it since); `Skipped`
    /// when it is not. Healers whose actions change nothing reversible keep this default.
    fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> impl Future<Output = Result<HealOutcome, HealError>> + Send {
        let message = format!(
            "the {} action has no revert `{}`",
            request.rule.action.kind(),
            revert.kind
        );
        async move { Err(HealError::new(message)) }
    }
}

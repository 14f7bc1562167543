//! The stop and start of an EBS-backed instance, the way every action of this layer does it:
//! marked first, resumable at every step, and never left stopped.
//!
//! Before the first stop, the instance is tagged `autoheal:stop-start` with the mark
//! `<token> <owner> <phase>`: the attempt's idempotency token, which action on which resource
//! stops it (`recover-ec2-instance/i-…`, `repair-ebs-volume/vol-…`) and how far it went
//! (`stopping`, then `starting` just before `StartInstances`). So:
//! - a step that resumes (a follow-up, or a run after a crash) finds where the last one
//!   stopped: an instance stopping or stopped under its own mark is stopped (forced) and
//!   started; one running under its own `starting` mark was started by it, and only the mark
//!   is left to drop;
//! - an instance a person stopped carries no mark and is never started;
//! - an instance another action stops (a volume repair while a status-check heal looks at
//!   it) carries that action's mark, and the other waits for it.
//!
//! A stop that hangs is forced; a forced stop that still hangs, a `StartInstances` that fails
//! (no capacity for the type in the zone, say) or a start that is slow leaves the attempt
//! *continuing*: it is resumed in a follow-up until the instance runs, instead of ending
//! `failed` with the instance stopped. Only the mark's removal, once the instance runs, ends
//! it. A mark without owner or phase (written by an earlier version) belongs to
//! `recover-ec2-instance` on its instance and says nothing of the phase.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName, Tag};
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::{api_error, describe};
use autoheal_core::HealError;

use crate::instances;

/// Marks an instance autoheal stopped and has yet to start again (see the module's docs).
pub const STOP_START_TAG: &str = "autoheal:stop-start";

/// How long to wait for a stop before forcing it, for a forced stop, and for the start:
/// within the function's 300 s timeout together. What takes longer continues in a follow-up.
const STOP_WAIT: Duration = Duration::from_secs(120);
const FORCED_STOP_WAIT: Duration = Duration::from_secs(60);
const START_WAIT: Duration = Duration::from_secs(90);

/// When to look again at a stop that is not done, and at a start refused or slow (a refusal
/// for capacity takes minutes to clear).
pub const STOPPING_RESUME_SECONDS: u64 = 60;
pub const STARTING_RESUME_SECONDS: u64 = 120;

/// How far a marked stop and start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Marked; the stop was asked for (or is about to be).
    Stopping,
    /// Stopped; the start was asked for (or is about to be).
    Starting,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Stopping => "stopping",
            Phase::Starting => "starting",
        }
    }
}

/// The value of [`STOP_START_TAG`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub token: String,
    /// `<action>/<resource id>`; `None` in a mark of an earlier version.
    pub owner: Option<String>,
    /// `None` in a mark of an earlier version.
    pub phase: Option<Phase>,
}

impl Mark {
    /// The mark of `action` (its kind) on `resource_id` for the attempt `token`.
    pub fn new(token: &str, action: &str, resource_id: &str, phase: Phase) -> Self {
        Mark {
            token: token.to_owned(),
            owner: Some(owner(action, resource_id)),
            phase: Some(phase),
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let token = parts.next()?.to_owned();
        let owner = parts.next().map(str::to_owned);
        let phase = match parts.next() {
            Some("stopping") => Some(Phase::Stopping),
            Some("starting") => Some(Phase::Starting),
            _ => None,
        };
        Some(Mark {
            token,
            owner,
            phase,
        })
    }

    /// The mark on `instance`, if it carries one.
    pub fn on(instance: &Instance) -> Option<Self> {
        instance
            .tags()
            .iter()
            .find(|tag| tag.key() == Some(STOP_START_TAG))
            .and_then(|tag| tag.value())
            .and_then(Mark::parse)
    }

    pub fn render(&self) -> String {
        let mut value = self.token.clone();
        if let Some(owner) = &self.owner {
            value.push(' ');
            value.push_str(owner);
            if let Some(phase) = self.phase {
                value.push(' ');
                value.push_str(phase.as_str());
            }
        }
        value
    }

    /// Whether this mark was made by `action` on `resource_id`; with `legacy`, a mark without
    /// an owner counts as this action's too.
    pub fn is_owned_by(&self, action: &str, resource_id: &str, legacy: bool) -> bool {
        match &self.owner {
            Some(owner_of) => *owner_of == owner(action, resource_id),
            None => legacy,
        }
    }

    /// The same mark at `phase` for the attempt `token`.
    pub fn at(&self, token: &str, phase: Phase) -> Self {
        Mark {
            token: token.to_owned(),
            owner: self.owner.clone(),
            phase: Some(phase),
        }
    }

    /// Who holds the instance, for a person: `repair-ebs-volume on vol-…`.
    pub fn holder(&self) -> String {
        match self.owner.as_deref().and_then(|o| o.split_once('/')) {
            Some((action, resource)) => format!("autoheal's {action} on {resource}"),
            None => "an earlier autoheal run".to_owned(),
        }
    }
}

fn owner(action: &str, resource_id: &str) -> String {
    format!("{action}/{resource_id}")
}

/// Where a stop and start stands after one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cycle {
    /// The instance runs again and the mark is gone; the details name its addresses.
    Done(BTreeMap<String, String>),
    /// Not done yet: why, to be resumed in a follow-up after `resume_after_seconds`.
    Waiting {
        stage: &'static str,
        why: String,
        resume_after_seconds: u64,
    },
}

/// How a start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Running,
    /// Not running yet: why (the start was refused, or it is slow).
    NotYet(String),
}

/// Stops and starts instances under a mark.
#[derive(Debug, Clone)]
pub struct StopStart {
    ec2: Ec2Client,
}

impl StopStart {
    pub fn new(ec2: Ec2Client) -> Self {
        StopStart { ec2 }
    }

    /// One step of a whole stop and start of `instance` under `mark` (the caller checked that
    /// any mark on it is its own): whatever the instance's state, it moves on towards running
    /// again on other hardware.
    pub async fn cycle(&self, instance: &Instance, mark: &Mark) -> Result<Cycle, HealError> {
        let id = instance.instance_id().unwrap_or_default();
        let state = instance.state().and_then(|s| s.name()).cloned();
        let current = Mark::on(instance);
        if state == Some(InstanceStateName::Running)
            && current
                .as_ref()
                .is_some_and(|m| m.token == mark.token && m.phase == Some(Phase::Starting))
        {
            // This attempt started it (and stopped before dropping the mark).
            return Ok(Cycle::Done(self.finish(id).await));
        }
        if state != Some(InstanceStateName::Pending) && !self.stop(instance, mark).await? {
            return Ok(Cycle::Waiting {
                stage: "stopping",
                why: format!("{id} is still stopping after a forced stop"),
                resume_after_seconds: STOPPING_RESUME_SECONDS,
            });
        }
        match self.start(id, mark).await? {
            Started::Running => Ok(Cycle::Done(self.finish(id).await)),
            Started::NotYet(why) => Ok(Cycle::Waiting {
                stage: "starting",
                why,
                resume_after_seconds: STARTING_RESUME_SECONDS,
            }),
        }
    }

    /// Brings `instance` to `stopped` under `mark` (phase `stopping`): stops a running one
    /// (forcing the stop once it hangs), forces the stop of one stopping. False while it is
    /// still stopping.
    pub async fn stop(&self, instance: &Instance, mark: &Mark) -> Result<bool, HealError> {
        let id = instance.instance_id().unwrap_or_default();
        match instance.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Stopped) => return Ok(true),
            Some(InstanceStateName::Running) => {
                self.write_mark(id, &mark.at(&mark.token, Phase::Stopping))
                    .await?;
                self.ec2
                    .stop_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| {
                        HealError::new(format!(
                            "{id} was not stopped: {}",
                            describe("StopInstances", &e)
                        ))
                    })?;
                if self.wait_stopped(id, STOP_WAIT).await.is_ok() {
                    return Ok(true);
                }
            }
            _ => {}
        }
        // It had its chance to stop cleanly: force it. It is on its way to stopped whatever
        // the answer: a refused force is tried again by the next step, never a failure that
        // would leave the instance stopped.
        if let Err(error) = self
            .ec2
            .stop_instances()
            .instance_ids(id)
            .force(true)
            .send()
            .await
        {
            tracing::warn!(instance = id, error = %describe("StopInstances", &error), "forced stop refused; the next step tries again");
            return Ok(false);
        }
        Ok(self.wait_stopped(id, FORCED_STOP_WAIT).await.is_ok())
    }

    /// Starts the stopped (or already pending) instance under `mark` (phase `starting`) and
    /// waits for it to run. A refused start is no error: the instance is stopped, and the
    /// next step starts it again.
    pub async fn start(&self, id: &str, mark: &Mark) -> Result<Started, HealError> {
        let state = instances::describe(&self.ec2, id)
            .await?
            .and_then(|i| i.state().and_then(|s| s.name()).cloned());
        match state {
            Some(InstanceStateName::Running) => return Ok(Started::Running),
            Some(InstanceStateName::Pending) => {}
            Some(InstanceStateName::Stopped) => {
                self.write_mark(id, &mark.at(&mark.token, Phase::Starting))
                    .await?;
                if let Err(error) = self.ec2.start_instances().instance_ids(id).send().await {
                    return Ok(Started::NotYet(format!(
                        "{id} is stopped: {}",
                        describe("StartInstances", &error)
                    )));
                }
            }
            other => {
                return Ok(Started::NotYet(format!(
                    "{id} is {}, not yet stopped",
                    other.as_ref().map_or("in an unknown state", |s| s.as_str())
                )));
            }
        }
        match self
            .ec2
            .wait_until_instance_running()
            .instance_ids(id)
            .wait(START_WAIT)
            .await
        {
            Ok(_) => Ok(Started::Running),
            Err(e) => Ok(Started::NotYet(format!(
                "{id} was started but does not run yet ({})",
                DisplayErrorContext(&e)
            ))),
        }
    }

    /// Drops the mark of a running instance and says where it runs now (its public IPv4
    /// address changes unless it is an Elastic IP). A mark that cannot be dropped is said in
    /// the details, not an error: the instance runs.
    pub async fn finish(&self, id: &str) -> BTreeMap<String, String> {
        let mut details = BTreeMap::new();
        if let Ok(Some(now)) = instances::describe(&self.ec2, id).await {
            if let Some(ip) = now.private_ip_address() {
                details.insert("private_ip".to_owned(), ip.to_owned());
            }
            if let Some(ip) = now.public_ip_address() {
                details.insert("public_ip".to_owned(), ip.to_owned());
            }
        }
        if let Err(message) = self.unmark(id).await {
            details.insert("tag_cleanup_error".to_owned(), message);
        }
        details
    }

    /// Drops the mark (naming its key: `DeleteTags` without keys deletes every tag).
    pub async fn unmark(&self, id: &str) -> Result<(), String> {
        self.ec2
            .delete_tags()
            .resources(id)
            .tags(Tag::builder().key(STOP_START_TAG).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe("DeleteTags", &e))
    }

    /// The instance carrying exactly `mark` (an attempt finding the instance it stopped).
    pub async fn marked_with(&self, mark: &Mark) -> Result<Option<Instance>, HealError> {
        let mut values = vec![mark.at(&mark.token, Phase::Stopping).render()];
        values.push(mark.at(&mark.token, Phase::Starting).render());
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{STOP_START_TAG}"))
                    .set_values(Some(values))
                    .build(),
            )
            .into_paginator()
            .send();
        let mut found = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api_error("DescribeInstances", e))?;
            found = found.or_else(|| {
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .find(|i| {
                        i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated)
                    })
                    .cloned()
            });
        }
        Ok(found)
    }

    async fn write_mark(&self, id: &str, mark: &Mark) -> Result<(), HealError> {
        self.ec2
            .create_tags()
            .resources(id)
            .tags(
                Tag::builder()
                    .key(STOP_START_TAG)
                    .value(mark.render())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("CreateTags", e))?;
        Ok(())
    }

    async fn wait_stopped(&self, id: &str, wait: Duration) -> Result<(), String> {
        self.ec2
            .wait_until_instance_stopped()
            .instance_ids(id)
            .wait(wait)
            .await
            .map(|_| ())
            .map_err(|e| DisplayErrorContext(&e).to_string())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_says_whose_it_is_and_how_far_it_went() {
        let mark = Mark::new("autoheal-1", "repair-ebs-volume", "vol-1", Phase::Stopping);
        let value = mark.render();
        assert_eq!(value, "autoheal-1 repair-ebs-volume/vol-1 stopping");
        assert_eq!(Mark::parse(&value), Some(mark.clone()));
        assert!(mark.is_owned_by("repair-ebs-volume", "vol-1", false));
        assert!(!mark.is_owned_by("repair-ebs-volume", "vol-2", true));
        assert!(!mark.is_owned_by("recover-ec2-instance", "vol-1", true));
        assert_eq!(mark.holder(), "autoheal's repair-ebs-volume on vol-1");
        assert_eq!(
            mark.at("autoheal-2", Phase::Starting).render(),
            "autoheal-2 repair-ebs-volume/vol-1 starting"
        );
    }

    #[test]
    fn a_mark_of_an_earlier_version_is_a_token_alone() {
        let mark = Mark::parse("autoheal-earlier-attempt").expect("a mark");
        assert_eq!(mark.token, "autoheal-earlier-attempt");
        assert_eq!((mark.owner.as_deref(), mark.phase), (None, None));
        assert!(mark.is_owned_by("recover-ec2-instance", "i-1", true));
        assert!(!mark.is_owned_by("repair-ebs-volume", "vol-1", false));
        assert_eq!(mark.render(), "autoheal-earlier-attempt");
        assert_eq!(Mark::parse("  "), None);
    }
}

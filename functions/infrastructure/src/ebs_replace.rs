//! The last resort of `repair-ebs-volume`: a replacement volume built from a snapshot taken
//! with the instance stopped, so that the snapshot holds every write and nothing is lost.
//!
//! The steps, each found again by the attempt's token and so never repeated, each resumed in a
//! follow-up while EC2 works:
//! 1. stop the instance under autoheal's mark ([`crate::stop_start`]): a data volume is never
//!    detached from a running instance;
//! 2. snapshot the volume, tagged as autoheal's; while EC2 takes it, the action continues;
//! 3. create the replacement from it in the same zone (`ClientToken`: the token), of the
//!    volume's own type, size, IOPS and throughput ([`spec`]), tagged with the token and
//!    `autoheal:attach-to` = `<instance>:<device>`, so that a step resuming between the detach
//!    and the attach puts it in place;
//! 4. with the instance still stopped: detach the volume, attach the replacement at the same
//!    device; the old volume is kept, tagged `autoheal:replaced-by` (autoheal never deletes a
//!    volume);
//! 5. start the instance again (a start refused for capacity continues, never ends `failed`
//!    with it stopped), then drop the mark and apply the snapshot retention.
//!
//! A volume attached to nothing has no writes to lose: it is snapshotted and its replacement
//! created, and nothing is stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, ResourceType, SnapshotState, Tag, TagSpecification,
    Volume, VolumeAttachmentState, VolumeState, VolumeType,
};
use aws_sdk_ec2::waiters::volume_available::WaitUntilVolumeAvailableError;
use aws_sdk_ec2::waiters::volume_in_use::WaitUntilVolumeInUseError;
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::snapshots::Ec2Snapshots;
use autoheal_core::policy::retention::{
    self, EBS_DESCRIPTION_PREFIX, Retention, Scope, ownership_tags,
};
use autoheal_core::{Clock, HealError, HealOutcome, HealRequest, SystemClock};

use crate::stop_start::{self, Mark, Phase, Started, StopStart};
use crate::volume_spec::{
    ATTACH_TO_TAG, INCIDENT_TAG, REPLACED_BY_TAG, REPLACES_TAG, Spec, TOKEN_TAG, replacement_tags,
    spec,
};

/// The longest wait, within one invocation, for a volume to change state.
const WAIT: Duration = Duration::from_secs(60);
/// How long to let EC2 work on a snapshot, or a slow volume change, before looking again.
pub const STEP_INTERVAL_SECONDS: u64 = 120;

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn tags_of(resource: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags))
        .build()
}

/// What one attempt made about `volume_id`: `name` is `volume_id`, and it carries the token.
fn attempt_filters(name: &str, volume_id: &str, token: &str) -> Vec<Filter> {
    vec![
        Filter::builder().name(name).values(volume_id).build(),
        Filter::builder()
            .name(format!("tag:{TOKEN_TAG}"))
            .values(token)
            .build(),
    ]
}

/// Where the volume sits: its instance (as last described) and device.
#[derive(Debug, Clone)]
pub struct Place {
    pub instance: Instance,
    pub device: String,
}

/// The replacement of one volume, one step at a time.
#[derive(Debug)]
pub struct Replacement<'a> {
    pub ec2: &'a Ec2Client,
    pub stop_start: &'a StopStart,
    pub request: HealRequest<'a>,
    pub volume: &'a Volume,
    pub target_volume_type: &'a str,
    pub force_detach: bool,
    pub retention: Retention,
    /// The mark autoheal puts on the instance it stops for this attempt.
    pub mark: &'a Mark,
}

impl Replacement<'_> {
    /// Takes the next step; `place` is where the volume is (or was, before an earlier step
    /// detached it), `None` for a volume attached to nothing.
    pub async fn step(&self, place: Option<&Place>) -> Result<HealOutcome, HealError> {
        let volume_id = self.volume.volume_id().unwrap_or_default();
        let mut details = BTreeMap::from([("recovery".to_owned(), "replace-volume".to_owned())]);
        if let Some(place) = place {
            let instance_id = place.instance.instance_id().unwrap_or_default();
            details.insert("instance_id".to_owned(), instance_id.to_owned());
            details.insert("device".to_owned(), place.device.clone());
            let state = place.instance.state().and_then(|s| s.name()).cloned();
            let started = Mark::on(&place.instance)
                .is_some_and(|m| m.token == self.mark.token && m.phase == Some(Phase::Starting));
            if started && state == Some(InstanceStateName::Running) {
                return self.finish(place, details).await;
            }
            if started {
                return self.start(place, details).await;
            }
            if !self.stop_start.stop(&place.instance, self.mark).await? {
                return Ok(continuing(
                    format!(
                        "stopping {instance_id} so that the snapshot of {volume_id} holds every write"
                    ),
                    details,
                    stop_start::STOPPING_RESUME_SECONDS,
                ));
            }
        }
        let (snapshot_id, state) = match self.find_snapshot().await? {
            Some(found) => found,
            None => self.create_snapshot().await?,
        };
        details.insert("snapshot_id".to_owned(), snapshot_id.clone());
        match state {
            Some(SnapshotState::Completed) => {}
            Some(SnapshotState::Error | SnapshotState::Recoverable) => {
                return Err(HealError::new(format!(
                    "snapshot {snapshot_id} of {volume_id} failed; the volume was not replaced{}",
                    place.map_or(String::new(), |p| format!(
                        ", and {} stays stopped under autoheal's mark for a person",
                        p.instance.instance_id().unwrap_or_default()
                    ))
                )));
            }
            _ => {
                return Ok(continuing(
                    format!(
                        "snapshot {snapshot_id} of {volume_id} is being taken; the replacement is built from it once it completes"
                    ),
                    details,
                    STEP_INTERVAL_SECONDS,
                ));
            }
        }
        let attach_to = place.map(|p| {
            format!(
                "{}:{}",
                p.instance.instance_id().unwrap_or_default(),
                p.device
            )
        });
        let spec = self.spec();
        let (new_id, attached) = self
            .replacement(&snapshot_id, &spec, attach_to.as_deref())
            .await?;
        details.insert("replacement_volume_id".to_owned(), new_id.clone());
        details.insert("volume_type".to_owned(), spec.volume_type.clone());
        if let Some(iops) = spec.iops {
            details.insert("iops".to_owned(), iops.to_string());
        }
        if let Some(throughput) = spec.throughput {
            details.insert("throughput".to_owned(), throughput.to_string());
        }
        if !attached && !self.wait(&new_id, false).await? {
            return Ok(continuing(
                format!(
                    "snapshot {snapshot_id} taken; replacement {new_id} is being created from it"
                ),
                details,
                STEP_INTERVAL_SECONDS,
            ));
        }
        let Some(place) = place else {
            self.mark_replaced(&new_id).await?;
            let summary = format!(
                "snapshot {snapshot_id} taken; replacement {new_id} ({}) created from it ({volume_id} is not attached to anything)",
                spec.describe()
            );
            return Ok(self.retained(summary, details, &snapshot_id).await);
        };
        if !self.swap(&new_id, place).await? {
            return Ok(continuing(
                format!(
                    "snapshot {snapshot_id} taken; {new_id} is taking the place of {volume_id}"
                ),
                details,
                STEP_INTERVAL_SECONDS,
            ));
        }
        self.mark_replaced(&new_id).await?;
        self.start(place, details).await
    }

    fn spec(&self) -> Spec {
        spec(
            self.volume.volume_type().map_or("gp2", |t| t.as_str()),
            self.volume.size(),
            self.volume.iops(),
            self.volume.throughput(),
            self.target_volume_type,
        )
    }

    /// Starts the instance again once the replacement is in place.
    async fn start(
        &self,
        place: &Place,
        details: BTreeMap<String, String>,
    ) -> Result<HealOutcome, HealError> {
        let instance_id = place.instance.instance_id().unwrap_or_default();
        match self.stop_start.start(instance_id, self.mark).await? {
            Started::Running => self.finish(place, details).await,
            Started::NotYet(why) => Ok(continuing(
                format!("the replacement is in place; starting {instance_id} again: {why}"),
                details,
                stop_start::STARTING_RESUME_SECONDS,
            )),
        }
    }

    /// The instance runs again with the replacement: drop the mark, apply the retention.
    async fn finish(
        &self,
        place: &Place,
        mut details: BTreeMap<String, String>,
    ) -> Result<HealOutcome, HealError> {
        let volume_id = self.volume.volume_id().unwrap_or_default();
        let instance_id = place.instance.instance_id().unwrap_or_default();
        let snapshot_id = self
            .find_snapshot()
            .await?
            .map(|(id, _)| id)
            .unwrap_or_default();
        let new_id = self
            .find_replacement()
            .await?
            .and_then(|v| v.volume_id().map(str::to_owned))
            .unwrap_or_default();
        details.insert("snapshot_id".to_owned(), snapshot_id.clone());
        details.insert("replacement_volume_id".to_owned(), new_id.clone());
        let spec = self.spec();
        let mut summary = format!(
            "stopped {instance_id}, took snapshot {snapshot_id} of {volume_id} with it stopped (every write in it), put replacement {new_id} ({}) at {} in its place, and started {instance_id} again; the old volume is kept",
            spec.describe(),
            place.device
        );
        let after = self.stop_start.finish(instance_id).await;
        if let Some(error) = after.get("tag_cleanup_error") {
            summary.push_str(&format!(
                "; the {} tag stays ({error}): remove it by hand",
                stop_start::STOP_START_TAG
            ));
        }
        details.extend(after);
        Ok(self.retained(summary, details, &snapshot_id).await)
    }

    async fn retained(
        &self,
        mut summary: String,
        mut details: BTreeMap<String, String>,
        snapshot_id: &str,
    ) -> HealOutcome {
        let scope = Scope {
            source: self.volume.volume_id().unwrap_or_default(),
            rule: &self.request.rule.name,
            just_made: snapshot_id,
        };
        let store = Ec2Snapshots::new(self.ec2.clone());
        retention::apply(&store, scope, self.retention, SystemClock.now())
            .await
            .add_to(&mut summary, &mut details);
        HealOutcome::healed(summary, details)
    }

    /// This attempt's snapshot and its state, if it took one.
    async fn find_snapshot(&self) -> Result<Option<(String, Option<SnapshotState>)>, HealError> {
        let volume_id = self.volume.volume_id().unwrap_or_default();
        let mut pages = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_filters(Some(attempt_filters(
                "volume-id",
                volume_id,
                self.request.idempotency_token,
            )))
            .into_paginator()
            .items()
            .send();
        let mut found = None;
        while let Some(snapshot) = pages.next().await {
            let snapshot = snapshot.map_err(|e| api_error("DescribeSnapshots", e))?;
            if found.is_none() {
                found = snapshot
                    .snapshot_id()
                    .map(|id| (id.to_owned(), snapshot.state().cloned()));
            }
        }
        Ok(found)
    }

    async fn create_snapshot(&self) -> Result<(String, Option<SnapshotState>), HealError> {
        let volume_id = self.volume.volume_id().unwrap_or_default();
        let request = &self.request;
        let created = self
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description(format!(
                "{EBS_DESCRIPTION_PREFIX}{volume_id} before repair (incident {})",
                request.incident_id
            ))
            .tag_specifications(tags_of(
                ResourceType::Snapshot,
                ownership_tags(volume_id, &request.rule.name)
                    .iter()
                    .map(|(key, value)| tag(key, value))
                    .chain([
                        tag(TOKEN_TAG, request.idempotency_token),
                        tag(INCIDENT_TAG, request.incident_id),
                        tag("autoheal:volume", volume_id),
                    ])
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| api_error("CreateSnapshot", e))?;
        let id = created
            .snapshot_id()
            .ok_or_else(|| HealError::new("CreateSnapshot returned no snapshot id"))?
            .to_owned();
        Ok((id, created.state().cloned()))
    }

    /// The replacement this attempt created, if any (found by its token).
    pub async fn find_replacement(&self) -> Result<Option<Volume>, HealError> {
        let volume_id = self.volume.volume_id().unwrap_or_default();
        let mut pages = self
            .ec2
            .describe_volumes()
            .set_filters(Some(attempt_filters(
                &format!("tag:{REPLACES_TAG}"),
                volume_id,
                self.request.idempotency_token,
            )))
            .into_paginator()
            .items()
            .send();
        let mut found = None;
        while let Some(volume) = pages.next().await {
            let volume = volume.map_err(|e| api_error("DescribeVolumes", e))?;
            found = found.or(Some(volume));
        }
        Ok(found)
    }

    /// This attempt's replacement, created from the snapshot if it is not yet; its id, and
    /// whether it is attached already.
    async fn replacement(
        &self,
        snapshot_id: &str,
        spec: &Spec,
        attach_to: Option<&str>,
    ) -> Result<(String, bool), HealError> {
        if let Some(existing) = self.find_replacement().await? {
            let id = existing
                .volume_id()
                .ok_or_else(|| HealError::new("DescribeVolumes returned no volume id"))?;
            return Ok((id.to_owned(), existing.state() == Some(&VolumeState::InUse)));
        }
        let zone = self
            .volume
            .availability_zone()
            .ok_or_else(|| HealError::new("the volume has no Availability Zone"))?;
        let created =
            self.ec2
                .create_volume()
                .snapshot_id(snapshot_id)
                .availability_zone(zone)
                .volume_type(VolumeType::from(spec.volume_type.as_str()))
                .set_size(spec.size)
                .set_iops(spec.iops)
                .set_throughput(spec.throughput)
                .client_token(self.request.idempotency_token)
                .tag_specifications(tags_of(
                    ResourceType::Volume,
                    replacement_tags(
                        self.volume.tags().iter().filter_map(|t| {
                            t.key().map(|key| (key, t.value().unwrap_or_default()))
                        }),
                        self.volume.volume_id().unwrap_or_default(),
                        self.request.incident_id,
                        self.request.idempotency_token,
                        attach_to,
                    )
                    .iter()
                    .map(|(key, value)| tag(key, value))
                    .collect(),
                ))
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "snapshot {snapshot_id} taken, but {}",
                        describe("CreateVolume", &e)
                    ))
                })?;
        let id = created
            .volume_id()
            .ok_or_else(|| HealError::new("CreateVolume returned no volume id"))?;
        Ok((id.to_owned(), false))
    }

    /// Waits (at most a minute) for the volume to be available (or, with `in_use`, attached);
    /// false if it is not yet.
    async fn wait(&self, volume_id: &str, in_use: bool) -> Result<bool, HealError> {
        let failed = |e: &dyn std::error::Error| {
            HealError::new(format!(
                "{volume_id} did not change state: {}",
                DisplayErrorContext(e)
            ))
        };
        if in_use {
            match self
                .ec2
                .wait_until_volume_in_use()
                .volume_ids(volume_id)
                .wait(WAIT)
                .await
            {
                Ok(_) => Ok(true),
                Err(WaitUntilVolumeInUseError::ExceededMaxWait(_)) => Ok(false),
                Err(e) => Err(failed(&e)),
            }
        } else {
            match self
                .ec2
                .wait_until_volume_available()
                .volume_ids(volume_id)
                .wait(WAIT)
                .await
            {
                Ok(_) => Ok(true),
                Err(WaitUntilVolumeAvailableError::ExceededMaxWait(_)) => Ok(false),
                Err(e) => Err(failed(&e)),
            }
        }
    }

    /// Puts `new` in the volume's place on the stopped instance: detaches the volume unless
    /// it already is, then attaches `new` unless it already is. False while a change is
    /// under way.
    async fn swap(&self, new: &str, place: &Place) -> Result<bool, HealError> {
        let old = self.volume.volume_id().unwrap_or_default();
        let instance_id = place.instance.instance_id().unwrap_or_default();
        let device = place.device.as_str();
        let now = crate::instances::describe(self.ec2, instance_id).await?;
        let stopped = now.as_ref().and_then(|i| i.state().and_then(|s| s.name()))
            == Some(&InstanceStateName::Stopped);
        if !stopped {
            return Err(HealError::new(format!(
                "{instance_id} is not stopped: {old} is not detached from a running instance; a person should look"
            )));
        }
        let old_volume = self.describe_volume(old).await?;
        let still_attached = old_volume.attachments().iter().any(|a| {
            a.instance_id() == Some(instance_id)
                && matches!(
                    a.state(),
                    Some(VolumeAttachmentState::Attached | VolumeAttachmentState::Attaching)
                )
        });
        if still_attached {
            self.ec2
                .detach_volume()
                .volume_id(old)
                .instance_id(instance_id)
                .device(device)
                .force(self.force_detach)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "replacement {new} is ready, but {}; {old} stays attached",
                        describe("DetachVolume", &e)
                    ))
                })?;
        }
        if !self.wait(old, false).await? {
            return Ok(false);
        }
        if self.describe_volume(new).await?.attachments().is_empty() {
            self.ec2
                .attach_volume()
                .volume_id(new)
                .instance_id(instance_id)
                .device(device)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "{old} was detached, but attaching {new} failed ({}); {instance_id} stays stopped: attach one of them at {device}, then start it",
                        describe("AttachVolume", &e)
                    ))
                })?;
        }
        self.wait(new, true).await
    }

    async fn describe_volume(&self, id: &str) -> Result<Volume, HealError> {
        crate::ebs::describe_volume(self.ec2, id)
            .await?
            .ok_or_else(|| HealError::new(format!("DescribeVolumes: no volume {id}")))
    }

    async fn mark_replaced(&self, new_id: &str) -> Result<(), HealError> {
        let old = self.volume.volume_id().unwrap_or_default();
        self.ec2
            .create_tags()
            .resources(old)
            .tags(tag(REPLACED_BY_TAG, new_id))
            .send()
            .await
            .map_err(|e| {
                HealError::new(format!(
                    "{old} was replaced by {new_id}, but {}",
                    describe("CreateTags", &e)
                ))
            })?;
        Ok(())
    }
}

fn continuing(
    summary: String,
    mut details: BTreeMap<String, String>,
    resume_after_seconds: u64,
) -> HealOutcome {
    details.insert("stage".to_owned(), "replacing".to_owned());
    HealOutcome::Continuing {
        summary,
        details,
        resume_after_seconds,
    }
}

/// `<instance>:<device>` from a replacement's `autoheal:attach-to` tag.
pub fn attach_to(replacement: &Volume) -> Option<(String, String)> {
    let (instance, device) = tag_value(replacement.tags(), ATTACH_TO_TAG)?.split_once(':')?;
    Some((instance.to_owned(), device.to_owned()))
}

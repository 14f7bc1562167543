//! `repair-ebs-volume`: move a volume whose I/O stalls onto fresh storage, snapshot first.
//!
//! 1. Look before acting: the volume must exist and not opt out; a root volume is refused
//!    (swapping it means stopping the instance: `ec2-instance-healing` replaces the instance).
//! 2. Snapshot the volume (a retried attempt reuses its snapshot, found by the attempt's token).
//!    A snapshot takes minutes to hours: while it is pending the action answers `Continuing`
//!    and autoheal resumes it in a follow-up (same attempt, same token), so no invocation
//!    waits for it.
//! 3. Create the replacement from the snapshot in the same Availability Zone, with the rule's
//!    volume type, tagged with the attempt's token (found again, never made twice) and with
//!    where it goes (`autoheal:attach-to`, `<instance>:<device>`).
//! 4. If the volume is attached, detach it (forced only when the rule says so), attach the
//!    replacement at the same device. A run that died between the detach and the attach is
//!    finished by the next step, from the replacement's `autoheal:attach-to`. The old volume
//!    is kept, tagged `autoheal:replaced-by`: autoheal never deletes a volume.
//!
//! Volume changes (the replacement becoming available, a detach) take seconds; each is
//! waited for at most a minute, then the action continues in a follow-up.
//! 5. Once the repair is done, autoheal's own older snapshots of the volume beyond the rule's
//!    retention are deleted (`autoheal_core::retention`); only snapshots tagged as autoheal's
//!    snapshots of this volume by this rule are ever candidates.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    Filter, ResourceType, SnapshotState, Tag, TagSpecification, Volume, VolumeAttachment,
    VolumeAttachmentState, VolumeState, VolumeType,
};
use aws_sdk_ec2::waiters::volume_available::WaitUntilVolumeAvailableError;
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::snapshots::Ec2Snapshots;
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::policy::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock};

/// The longest wait, within one invocation, for a volume to change state.
const WAIT: Duration = Duration::from_secs(60);
/// How long to let EC2 work on a snapshot, or a slow volume change, before looking again.
pub const STEP_INTERVAL_SECONDS: u64 = 120;
/// Where a replacement goes: `<instance id>:<device>` of the volume it replaces.
const ATTACH_TO_TAG: &str = "autoheal:attach-to";

/// The tag that finds an attempt's snapshot again when the attempt is retried.
const TOKEN_TAG: &str = "autoheal:token";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// What one attempt made about `volume_id`: `name` is `volume_id`, and it carries the
/// attempt's token.
fn attempt_filters(name: &str, volume_id: &str, token: &str) -> Vec<Filter> {
    vec![
        Filter::builder().name(name).values(volume_id).build(),
        Filter::builder()
            .name(format!("tag:{TOKEN_TAG}"))
            .values(token)
            .build(),
    ]
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

fn wait_error(what: &str, error: impl std::error::Error + 'static) -> HealError {
    HealError::new(format!("{what}: {}", DisplayErrorContext(&error)))
}

/// Repairs EBS volumes.
#[derive(Debug, Clone)]
pub struct VolumeRepairer {
    ec2: Ec2Client,
}

impl VolumeRepairer {
    pub fn new(ec2: Ec2Client) -> Self {
        VolumeRepairer { ec2 }
    }

    async fn volume(&self, volume_id: &str) -> Result<Volume, HealError> {
        self.ec2
            .describe_volumes()
            .volume_ids(volume_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeVolumes", e))?
            .volumes()
            .iter()
            .find(|volume| volume.volume_id() == Some(volume_id))
            .cloned()
            .ok_or_else(|| HealError::new(format!("DescribeVolumes: no volume {volume_id}")))
    }

    /// Whether `attachment` is its instance's root device.
    async fn is_root(&self, attachment: &VolumeAttachment) -> Result<bool, HealError> {
        let (Some(instance_id), Some(device)) = (attachment.instance_id(), attachment.device())
        else {
            return Ok(false);
        };
        let instance = autoheal_aws::lookups::describe_instance(&self.ec2, instance_id).await?;
        Ok(instance.root_device_name() == Some(device))
    }

    /// Repairs the volume. The rules file guarantees `snapshot_first`: the replacement is
    /// built from the snapshot.
    pub async fn repair(
        &self,
        request: HealRequest<'_>,
        target_volume_type: &str,
        force_detach: bool,
        retention: Retention,
    ) -> Result<HealOutcome, HealError> {
        let volume_id = request.resource_id;
        let volume = self.volume(volume_id).await?;
        if pairs_opt_out(volume.tags().iter().filter_map(|t| t.key().zip(t.value()))) {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::OptedOut,
                summary: format!("{volume_id} is tagged {OPT_OUT_TAG}=true"),
            });
        }
        match volume.state() {
            Some(VolumeState::InUse | VolumeState::Available) => {}
            Some(VolumeState::Deleting | VolumeState::Deleted) => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::NotNeeded,
                    summary: format!("{volume_id} is being deleted"),
                });
            }
            other => {
                return Ok(HealOutcome::Skipped {
                    reason: SkipReason::Unsafe,
                    summary: format!(
                        "{volume_id} is {}: not in a state to snapshot",
                        other.map_or("in an unknown state", |state| state.as_str())
                    ),
                });
            }
        }
        let attachment = volume
            .attachments()
            .iter()
            .find(|a| a.instance_id().is_some())
            .cloned();
        if let Some(attachment) = &attachment
            && self.is_root(attachment).await?
        {
            return Ok(HealOutcome::Skipped {
                reason: SkipReason::Unsafe,
                summary: format!(
                    "{volume_id} is the root volume of {}: swapping it needs the instance stopped; replace the instance instead",
                    attachment.instance_id().unwrap_or("its instance")
                ),
            });
        }
        let zone = volume
            .availability_zone()
            .ok_or_else(|| HealError::new(format!("{volume_id} has no Availability Zone")))?;
        let mut details = BTreeMap::new();

        let (snapshot_id, snapshot_state) = self.snapshot(request, volume_id).await?;
        details.insert("snapshot_id".to_owned(), snapshot_id.clone());
        match snapshot_state {
            Some(SnapshotState::Completed) => {}
            Some(SnapshotState::Error | SnapshotState::Recoverable) => {
                return Err(HealError::new(format!(
                    "snapshot {snapshot_id} of {volume_id} failed; nothing else was changed"
                )));
            }
            _ => {
                return Ok(HealOutcome::Continuing {
                    summary: format!(
                        "snapshot {snapshot_id} of {volume_id} is being taken; the replacement is built from it once it completes"
                    ),
                    details,
                    resume_after_seconds: STEP_INTERVAL_SECONDS,
                });
            }
        }
        // A run that died between the detach and the attach left the volume detached: the
        // replacement says where it goes.
        let replacement = self.replacement(request, volume_id).await?;
        let attachment = attachment.or_else(|| {
            let (instance, device) = replacement
                .as_ref()
                .filter(|r| r.attachments().is_empty())
                .and_then(|r| tag_value(r.tags(), ATTACH_TO_TAG))?
                .split_once(':')
                .map(|(i, d)| (i.to_owned(), d.to_owned()))?;
            Some(
                VolumeAttachment::builder()
                    .instance_id(instance)
                    .device(device)
                    .build(),
            )
        });

        // A replacement an earlier step attached is ready as it is.
        let attached = replacement
            .as_ref()
            .is_some_and(|r| r.state() == Some(&VolumeState::InUse));
        let new_id = match replacement {
            Some(existing) => existing
                .volume_id()
                .ok_or_else(|| HealError::new("DescribeVolumes returned no volume id"))?
                .to_owned(),
            None => {
                let mut new_tags: Vec<Tag> = volume
                    .tags()
                    .iter()
                    .filter(|t| {
                        t.key().is_some_and(|key| {
                            !key.starts_with("aws:") && key != TOKEN_TAG && key != ATTACH_TO_TAG
                        })
                    })
                    .cloned()
                    .collect();
                new_tags.push(tag("autoheal:replaces", volume_id));
                new_tags.push(tag("autoheal:incident", request.incident_id));
                new_tags.push(tag(TOKEN_TAG, request.idempotency_token));
                if let Some(attachment) = &attachment {
                    new_tags.push(tag(
                        ATTACH_TO_TAG,
                        &format!(
                            "{}:{}",
                            attachment.instance_id().unwrap_or_default(),
                            attachment.device().unwrap_or_default()
                        ),
                    ));
                }
                let created = self
                    .ec2
                    .create_volume()
                    .snapshot_id(&snapshot_id)
                    .availability_zone(zone)
                    .volume_type(VolumeType::from(target_volume_type))
                    .set_size(volume.size())
                    .client_token(request.idempotency_token)
                    .tag_specifications(tags_of(ResourceType::Volume, new_tags))
                    .send()
                    .await
                    .map_err(|e| {
                        HealError::new(format!(
                            "snapshot {snapshot_id} taken, but {}",
                            describe("CreateVolume", &e)
                        ))
                    })?;
                created
                    .volume_id()
                    .ok_or_else(|| HealError::new("CreateVolume returned no volume id"))?
                    .to_owned()
            }
        };
        details.insert("replacement_volume_id".to_owned(), new_id.clone());
        let ready = attached || self.wait_available(&new_id).await?;
        if !ready {
            return Ok(HealOutcome::Continuing {
                summary: format!(
                    "snapshot {snapshot_id} taken; replacement {new_id} is being created from it"
                ),
                details,
                resume_after_seconds: STEP_INTERVAL_SECONDS,
            });
        }

        let mut summary = match attachment {
            Some(attachment) => {
                let instance_id = attachment.instance_id().unwrap_or_default().to_owned();
                let device = attachment.device().unwrap_or_default().to_owned();
                if !self
                    .swap(volume_id, &new_id, &instance_id, &device, force_detach)
                    .await?
                {
                    return Ok(HealOutcome::Continuing {
                        summary: format!(
                            "snapshot {snapshot_id} taken; {volume_id} is being detached from {instance_id} to make room for {new_id}"
                        ),
                        details,
                        resume_after_seconds: STEP_INTERVAL_SECONDS,
                    });
                }
                details.insert("instance_id".to_owned(), instance_id.clone());
                details.insert("device".to_owned(), device.clone());
                format!(
                    "snapshot {snapshot_id} taken; {volume_id} replaced by {target_volume_type} volume {new_id} at {device} of {instance_id}; the old volume is kept"
                )
            }
            None => format!(
                "snapshot {snapshot_id} taken; {target_volume_type} replacement {new_id} created from it ({volume_id} is not attached)"
            ),
        };
        self.ec2
            .create_tags()
            .resources(volume_id)
            .tags(tag("autoheal:replaced-by", &new_id))
            .send()
            .await
            .map_err(|e| {
                HealError::new(format!("{summary}, but {}", describe("CreateTags", &e)))
            })?;

        let scope = Scope {
            source: volume_id,
            rule: &request.rule.name,
            just_made: &snapshot_id,
        };
        let store = Ec2Snapshots::new(self.ec2.clone());
        retention::apply(&store, scope, retention, SystemClock.now())
            .await
            .add_to(&mut summary, &mut details);
        Ok(HealOutcome::healed(summary, details))
    }

    /// Snapshots the volume once per attempt (found again by the attempt's token); returns
    /// the snapshot and its state.
    async fn snapshot(
        &self,
        request: HealRequest<'_>,
        volume_id: &str,
    ) -> Result<(String, Option<SnapshotState>), HealError> {
        let existing = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_filters(Some(attempt_filters(
                "volume-id",
                volume_id,
                request.idempotency_token,
            )))
            .send()
            .await
            .map_err(|e| api_error("DescribeSnapshots", e))?
            .snapshots()
            .iter()
            .find_map(|snapshot| {
                Some((
                    snapshot.snapshot_id()?.to_owned(),
                    snapshot.state().cloned(),
                ))
            });
        if let Some(found) = existing {
            return Ok(found);
        }
        let created = self
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description(format!(
                "autoheal: {volume_id} before repair (incident {})",
                request.incident_id
            ))
            .tag_specifications(tags_of(
                ResourceType::Snapshot,
                ownership_tags(volume_id, &request.rule.name)
                    .iter()
                    .map(|(key, value)| tag(key, value))
                    .chain([
                        tag(TOKEN_TAG, request.idempotency_token),
                        tag("autoheal:incident", request.incident_id),
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

    /// The replacement this attempt already created, if any (found by its token).
    async fn replacement(
        &self,
        request: HealRequest<'_>,
        volume_id: &str,
    ) -> Result<Option<Volume>, HealError> {
        let output = self
            .ec2
            .describe_volumes()
            .set_filters(Some(attempt_filters(
                "tag:autoheal:replaces",
                volume_id,
                request.idempotency_token,
            )))
            .send()
            .await
            .map_err(|e| api_error("DescribeVolumes", e))?;
        Ok(output.volumes().first().cloned())
    }

    /// Waits (at most a minute) for the volume to be available; false if it is not yet.
    async fn wait_available(&self, volume_id: &str) -> Result<bool, HealError> {
        match self
            .ec2
            .wait_until_volume_available()
            .volume_ids(volume_id)
            .wait(WAIT)
            .await
        {
            Ok(_) => Ok(true),
            Err(WaitUntilVolumeAvailableError::ExceededMaxWait(_)) => Ok(false),
            Err(e) => Err(wait_error(
                &format!("{volume_id} did not become available"),
                e,
            )),
        }
    }

    /// Puts `new` in the place of `old` on the instance: detaches `old` unless it already is,
    /// then attaches `new` unless it already is. False while `old` is still detaching.
    async fn swap(
        &self,
        old: &str,
        new: &str,
        instance_id: &str,
        device: &str,
        force_detach: bool,
    ) -> Result<bool, HealError> {
        let old_volume = self.volume(old).await?;
        // A detach an earlier step started is not started again.
        if old_volume.attachments().iter().any(|a| {
            a.instance_id() == Some(instance_id)
                && matches!(
                    a.state(),
                    Some(VolumeAttachmentState::Attached | VolumeAttachmentState::Attaching)
                )
        }) {
            self.ec2
                .detach_volume()
                .volume_id(old)
                .instance_id(instance_id)
                .device(device)
                .force(force_detach)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "replacement {new} is ready, but {}; {old} stays attached",
                        describe("DetachVolume", &e)
                    ))
                })?;
        }
        if !self.wait_available(old).await? {
            return Ok(false);
        }
        let new_volume = self.volume(new).await?;
        if new_volume.attachments().is_empty() {
            self.ec2
                .attach_volume()
                .volume_id(new)
                .instance_id(instance_id)
                .device(device)
                .send()
                .await
                .map_err(|e| {
                    HealError::new(format!(
                        "{old} was detached, but attaching {new} failed ({}); reattach one of them at {device}",
                        describe("AttachVolume", &e)
                    ))
                })?;
        }
        Ok(true)
    }
}

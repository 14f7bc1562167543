//! `repair-ebs-volume`: move a volume whose I/O stalls onto fresh storage, snapshot first.
//!
//! 1. Look before acting: the volume must exist and not opt out; a root volume is refused
//!    (swapping it means stopping the instance: `ec2-instance-healing` replaces the instance).
//! 2. Snapshot the volume (a retried attempt reuses its snapshot, found by the attempt's token).
//! 3. Create the replacement from the snapshot in the same Availability Zone, with the rule's
//!    volume type (`ClientToken` = the attempt's token, so a retry creates no second one).
//! 4. If the volume is attached, detach it (forced only when the rule says so), attach the
//!    replacement at the same device. The old volume is kept, tagged `autoheal:replaced-by`:
//!    autoheal never deletes a volume.
//! 5. Once the repair is done, autoheal's own older snapshots of the volume beyond the rule's
//!    retention are deleted (`autoheal_core::retention`); only snapshots tagged as autoheal's
//!    snapshots of this volume by this rule are ever candidates.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    Filter, ResourceType, Tag, TagSpecification, Volume, VolumeAttachment, VolumeState, VolumeType,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::errors::{api_error, describe};
use autoheal_aws::snapshots::Ec2Snapshots;
use autoheal_aws::tags::{OPT_OUT_TAG, pairs_opt_out};
use autoheal_core::retention::{self, Retention, Scope, ownership_tags};
use autoheal_core::{Clock, HealError, HealOutcome, HealRequest, SkipReason, SystemClock};

/// The longest wait for a snapshot to complete or a volume to change state.
const WAIT: Duration = Duration::from_secs(240);

/// The tag that finds an attempt's snapshot again when the attempt is retried.
const TOKEN_TAG: &str = "autoheal:token";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
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

        let snapshot_id = self.snapshot(request, volume_id).await?;
        details.insert("snapshot_id".to_owned(), snapshot_id.clone());

        let mut new_tags: Vec<Tag> = volume
            .tags()
            .iter()
            .filter(|t| {
                t.key()
                    .is_some_and(|key| !key.starts_with("aws:") && key != TOKEN_TAG)
            })
            .cloned()
            .collect();
        new_tags.push(tag("autoheal:replaces", volume_id));
        new_tags.push(tag("autoheal:incident", request.incident_id));
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
        let new_id = created
            .volume_id()
            .ok_or_else(|| HealError::new("CreateVolume returned no volume id"))?
            .to_owned();
        details.insert("replacement_volume_id".to_owned(), new_id.clone());
        self.ec2
            .wait_until_volume_available()
            .volume_ids(&new_id)
            .wait(WAIT)
            .await
            .map_err(|e| {
                wait_error(&format!("replacement {new_id} did not become available"), e)
            })?;

        let mut summary = match attachment {
            Some(attachment) => {
                let instance_id = attachment.instance_id().unwrap_or_default().to_owned();
                let device = attachment.device().unwrap_or_default().to_owned();
                self.swap(volume_id, &new_id, &instance_id, &device, force_detach)
                    .await?;
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

    /// Snapshots the volume once per attempt (found again by the attempt's token).
    async fn snapshot(
        &self,
        request: HealRequest<'_>,
        volume_id: &str,
    ) -> Result<String, HealError> {
        let existing = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .values(volume_id)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name(format!("tag:{TOKEN_TAG}"))
                    .values(request.idempotency_token)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("DescribeSnapshots", e))?
            .snapshots()
            .iter()
            .find_map(|snapshot| snapshot.snapshot_id().map(str::to_owned));
        let snapshot_id = match existing {
            Some(id) => id,
            None => self
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
                .map_err(|e| api_error("CreateSnapshot", e))?
                .snapshot_id()
                .ok_or_else(|| HealError::new("CreateSnapshot returned no snapshot id"))?
                .to_owned(),
        };
        self.ec2
            .wait_until_snapshot_completed()
            .snapshot_ids(&snapshot_id)
            .wait(WAIT)
            .await
            .map_err(|e| wait_error(&format!("snapshot {snapshot_id} did not complete"), e))?;
        Ok(snapshot_id)
    }

    async fn swap(
        &self,
        old: &str,
        new: &str,
        instance_id: &str,
        device: &str,
        force_detach: bool,
    ) -> Result<(), HealError> {
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
        self.ec2
            .wait_until_volume_available()
            .volume_ids(old)
            .wait(WAIT)
            .await
            .map_err(|e| wait_error(&format!("{old} did not detach"), e))?;
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
        Ok(())
    }
}

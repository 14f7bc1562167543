//! `repair-ebs-volume`: heal a volume whose I/O stalls, least destructive first, and never at
//! the cost of data.
//!
//! Each attempt does one thing ([`plan`]):
//! 1. **Attempt 1, I/O disabled**: where the volume's status says EBS disabled I/O to it
//!    (`io-enabled` failed, after finding its data possibly inconsistent) and `AutoEnableIO`
//!    is off, `EnableVolumeIO`. Nothing else changes; the record says to check the file system.
//! 2. **Attempt 1 otherwise**: stop and start the instance the volume is attached to, which
//!    moves it to other hardware (AWS's remedy for a failed stalled-I/O check). The volume,
//!    its data and its attachment stay as they are. The stop and start is
//!    [`crate::stop_start`]'s, marked as this action's on this volume, resumable and continued
//!    until the instance runs.
//! 3. **Attempt 2 and later**: a replacement volume, built from a snapshot taken with the
//!    instance stopped, so that it holds every write, of the volume's own type, size, IOPS and
//!    throughput, put in its place while the instance is stopped, then the instance started
//!    again (see [`crate::ebs_replace`]). A volume attached to nothing gets its replacement at
//!    once: nothing writes to it.
//!
//! Refused (`unsafe`, for a person): stopping or replacing for a **root** volume (the
//! instance's own status-check rule stops and starts it) or a **Multi-Attach** volume
//! (stopping one instance does not stop the others' writes); an instance that a stop would
//! cost data or the instance itself (instance store, spot), that opted out, or that is in an
//! Auto Scaling group (which would replace it once stopped); an instance with stop protection
//! (`DisableApiStop`). An instance stopped by someone else is left stopped (`not-needed`: no
//! I/O flows). Re-enabling I/O touches no instance: it is done for all of them.
//!
//! Before each new attempt ([`VolumeRepairer::assess`]): a volume EBS does not know, or is
//! deleting, is `gone`; I/O disabled with `AutoEnableIO` on is EBS's to re-enable
//! (`aws-healing`); an instance another autoheal run is stopping and starting (its
//! `autoheal:stop-start` mark) is `resource-busy`; stop protection where a stop is needed is a
//! person's hold (`operator-hold`).

use std::collections::BTreeMap;

use aws_sdk_autoscaling::Client as AutoScalingClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{Instance, InstanceStateName, Volume, VolumeState};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use autoheal_aws::errors::api_error;
use autoheal_aws::tags::{is_opted_out, pairs_opt_out};
use autoheal_core::Retention;
use autoheal_core::{Assessment, HealError, HealOutcome, HealRequest, SkipReason};

use crate::ebs_plan::{Host, Seen, Step, plan};
use crate::ebs_replace::{self, Place, Replacement};
use crate::instances::{self, InstanceTypes};
use crate::stop_start::{Cycle, Mark, Phase, StopStart};
use crate::{groups, volume_status};

/// The action's kind, as marks name it.
pub const ACTION: &str = "repair-ebs-volume";

/// When to look again at a volume EBS is re-enabling, another run's instance, a person's hold.
const RECHECK_SECONDS: u64 = 300;
const RESOURCE_BUSY_RECHECK_SECONDS: u64 = 120;

/// One volume by id; `None` when EBS does not know it.
pub async fn describe_volume(
    ec2: &Ec2Client,
    volume_id: &str,
) -> Result<Option<Volume>, HealError> {
    // One id, one answer: EC2 pages this call only when no ids are named.
    let output = match ec2.describe_volumes().volume_ids(volume_id).send().await {
        Ok(output) => output,
        Err(e) if e.code() == Some("InvalidVolume.NotFound") => return Ok(None),
        Err(e) => return Err(api_error("DescribeVolumes", e)),
    };
    Ok(output
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|volume| volume.volume_id() == Some(volume_id)))
}

fn is_deleted(volume: &Volume) -> bool {
    matches!(
        volume.state(),
        Some(VolumeState::Deleting | VolumeState::Deleted)
    )
}

/// A look at the volume, its status and its instance.
#[derive(Debug, Clone)]
struct Look {
    seen: Seen,
    /// The instance it is attached to, and the device.
    place: Option<Place>,
    /// The instance carries another run's stop-start mark.
    busy: Option<String>,
    auto_enable_io: bool,
}

/// Repairs EBS volumes.
#[derive(Debug, Clone)]
pub struct VolumeRepairer {
    ec2: Ec2Client,
    autoscaling: AutoScalingClient,
    stop_start: StopStart,
    types: InstanceTypes,
}

impl VolumeRepairer {
    pub fn new(ec2: Ec2Client, autoscaling: AutoScalingClient, types: InstanceTypes) -> Self {
        VolumeRepairer {
            stop_start: StopStart::new(ec2.clone()),
            types,
            ec2,
            autoscaling,
        }
    }

    /// Whether the volume is gone (unknown to EBS, or being deleted).
    pub async fn is_gone(&self, volume_id: &str) -> Result<bool, HealError> {
        Ok(describe_volume(&self.ec2, volume_id)
            .await?
            .is_none_or(|volume| is_deleted(&volume)))
    }

    /// Looks, read-only, at what may already heal the volume or hold its instance (see the
    /// module's docs) before a new attempt.
    pub async fn assess(&self, request: HealRequest<'_>) -> Result<Assessment, HealError> {
        let volume_id = request.resource_id;
        let Some(volume) = describe_volume(&self.ec2, volume_id)
            .await?
            .filter(|v| !is_deleted(v))
        else {
            return Ok(Assessment::gone(format!(
                "EBS does not know volume {volume_id}, or is deleting it"
            )));
        };
        if opted_out(&volume) {
            return Ok(Assessment::Proceed);
        }
        let look = self.look(&request, &volume).await?;
        if look.seen.io_disabled && look.auto_enable_io {
            return Ok(Assessment::aws_healing(
                format!("EBS disabled I/O to {volume_id} and re-enables it itself (AutoEnableIO)"),
                RECHECK_SECONDS,
            ));
        }
        let step = plan(&look.seen);
        if let Some(holder) = look.busy.filter(|_| step.stops(&look.seen)) {
            return Ok(Assessment::resource_busy(
                holder,
                RESOURCE_BUSY_RECHECK_SECONDS,
            ));
        }
        if let Some(host) = look.seen.host.as_ref().filter(|_| step.stops(&look.seen))
            && instances::stop_protected(&self.ec2, &host.id).await?
        {
            return Ok(Assessment::operator_hold(
                format!(
                    "healing {volume_id} needs {} stopped, and a person protects it from stops (DisableApiStop)",
                    host.id
                ),
                RECHECK_SECONDS,
            ));
        }
        Ok(Assessment::Proceed)
    }

    /// One step of the attempt's repair (see the module's docs).
    pub async fn repair(
        &self,
        request: HealRequest<'_>,
        target_volume_type: &str,
        force_detach: bool,
        retention: Retention,
    ) -> Result<HealOutcome, HealError> {
        let volume_id = request.resource_id;
        let skipped = |reason, summary: String| Ok(HealOutcome::Skipped { reason, summary });
        let Some(volume) = describe_volume(&self.ec2, volume_id).await? else {
            return skipped(
                SkipReason::Gone,
                format!("EBS does not know volume {volume_id}"),
            );
        };
        if opted_out(&volume) {
            return skipped(
                SkipReason::OptedOut,
                format!("{volume_id} {}", autoheal_aws::tags::opted_out_phrase()),
            );
        }
        match volume.state() {
            Some(VolumeState::InUse | VolumeState::Available) => {}
            Some(VolumeState::Deleting | VolumeState::Deleted) => {
                return skipped(SkipReason::Gone, format!("{volume_id} is being deleted"));
            }
            other => {
                return skipped(
                    SkipReason::Unsafe,
                    format!(
                        "{volume_id} is {}: not in a state to repair",
                        other.map_or("in an unknown state", |state| state.as_str())
                    ),
                );
            }
        }
        let mark = Mark::new(
            request.idempotency_token,
            ACTION,
            volume_id,
            Phase::Stopping,
        );
        let replacement = Replacement {
            ec2: &self.ec2,
            stop_start: &self.stop_start,
            request,
            volume: &volume,
            target_volume_type,
            force_detach,
            retention,
            mark: &mark,
        };
        // A step of this attempt stopped the instance: see the job through, whatever else
        // changed since.
        if let Some(instance) = self.stop_start.marked_with(&mark).await? {
            let place = self.place_of(&volume, instance, &replacement).await?;
            return if request.attempt <= 1 {
                self.stop_start_step(&volume, &place, &mark).await
            } else {
                replacement.step(Some(&place)).await
            };
        }
        let look = self.look(&request, &volume).await?;
        let step = plan(&look.seen);
        if let Some(holder) = look.busy.filter(|_| step.stops(&look.seen)) {
            return skipped(
                SkipReason::Unsafe,
                format!("{holder}; autoheal does not stop it under them"),
            );
        }
        if let Some(host) = look.seen.host.as_ref().filter(|_| step.stops(&look.seen))
            && instances::stop_protected(&self.ec2, &host.id).await?
        {
            return skipped(
                SkipReason::Unsafe,
                format!(
                    "healing {volume_id} needs {} stopped, and a person protects it from stops (DisableApiStop)",
                    host.id
                ),
            );
        }
        match (step, look.place) {
            (Step::EnableIo, _) => {
                volume_status::enable_io(&self.ec2, volume_id).await?;
                Ok(HealOutcome::healed(
                    format!(
                        "re-enabled I/O to {volume_id}, which EBS had disabled after finding its data possibly inconsistent; check its file system (e.g. fsck) before trusting its data"
                    ),
                    BTreeMap::from([("recovery".to_owned(), "enable-volume-io".to_owned())]),
                ))
            }
            (Step::StopStart, Some(place)) => self.stop_start_step(&volume, &place, &mark).await,
            (Step::Replace, place) => replacement.step(place.as_ref()).await,
            (Step::Skip { reason, why }, _) => skipped(reason, format!("{volume_id}: {why}")),
            (Step::StopStart, None) => Err(HealError::new(format!(
                "{volume_id} is attached to no instance to stop and start"
            ))),
        }
    }

    /// Where the volume is on the instance this attempt stopped: its attachment there, or,
    /// once an earlier step detached it, the replacement's `autoheal:attach-to`.
    async fn place_of(
        &self,
        volume: &Volume,
        instance: Instance,
        replacement: &Replacement<'_>,
    ) -> Result<Place, HealError> {
        let instance_id = instance.instance_id().unwrap_or_default().to_owned();
        let attached = volume
            .attachments()
            .iter()
            .find(|a| a.instance_id() == Some(instance_id.as_str()))
            .and_then(|a| a.device().map(str::to_owned));
        let device = match attached {
            Some(device) => device,
            None => replacement
                .find_replacement()
                .await?
                .as_ref()
                .and_then(ebs_replace::attach_to)
                .filter(|(id, _)| *id == instance_id)
                .map(|(_, device)| device)
                .ok_or_else(|| {
                    HealError::new(format!(
                        "{instance_id} was stopped for {} but where the volume goes is unknown: a person should attach it and start {instance_id}",
                        volume.volume_id().unwrap_or_default()
                    ))
                })?,
        };
        Ok(Place { instance, device })
    }

    /// The first attempt's stop and start of the volume's instance.
    async fn stop_start_step(
        &self,
        volume: &Volume,
        place: &Place,
        mark: &Mark,
    ) -> Result<HealOutcome, HealError> {
        let volume_id = volume.volume_id().unwrap_or_default();
        let instance_id = place.instance.instance_id().unwrap_or_default();
        let mut details = BTreeMap::from([
            ("recovery".to_owned(), "stop-start".to_owned()),
            ("instance_id".to_owned(), instance_id.to_owned()),
            ("device".to_owned(), place.device.clone()),
        ]);
        match self.stop_start.cycle(&place.instance, mark).await? {
            Cycle::Done(after) => {
                let mut summary = format!(
                    "stopped and started {instance_id}, to which {volume_id} is attached at {}, onto other hardware; the volume, its data and its attachment stay; a later attempt replaces the volume",
                    place.device
                );
                if let Some(error) = after.get("tag_cleanup_error") {
                    summary.push_str(&format!(
                        "; the autoheal:stop-start tag stays ({error}): remove it by hand"
                    ));
                }
                details.extend(after);
                Ok(HealOutcome::healed(summary, details))
            }
            Cycle::Waiting {
                stage,
                why,
                resume_after_seconds,
            } => {
                details.insert("stage".to_owned(), stage.to_owned());
                Ok(HealOutcome::Continuing {
                    summary: format!(
                        "stopping and starting {instance_id} for {volume_id}: {why}; autoheal tries again in {resume_after_seconds} s until it runs"
                    ),
                    details,
                    resume_after_seconds,
                })
            }
        }
    }

    /// Reads the volume's status and its instance.
    async fn look(&self, request: &HealRequest<'_>, volume: &Volume) -> Result<Look, HealError> {
        let volume_id = volume.volume_id().unwrap_or_default();
        let health = volume_status::read(&self.ec2, volume_id).await?;
        let auto_enable_io =
            health.io_disabled && volume_status::auto_enable_io(&self.ec2, volume_id).await?;
        let mut look = Look {
            seen: Seen {
                attempt: request.attempt,
                io_disabled: health.io_disabled,
                multi_attach: volume.multi_attach_enabled() == Some(true),
                host: None,
            },
            place: None,
            busy: None,
            auto_enable_io,
        };
        let Some(attachment) = volume
            .attachments()
            .iter()
            .find(|a| a.instance_id().is_some())
        else {
            return Ok(look);
        };
        let instance_id = attachment.instance_id().unwrap_or_default();
        let device = attachment.device().unwrap_or_default();
        let Some(instance) = instances::describe(&self.ec2, instance_id).await? else {
            return Ok(look);
        };
        let state = instance.state().and_then(|s| s.name()).cloned();
        let mark = Mark::on(&instance);
        if let Some(theirs) = mark
            .as_ref()
            .filter(|m| !m.is_owned_by(ACTION, volume_id, false))
        {
            look.busy = Some(format!(
                "{instance_id}, to which {volume_id} is attached, is being stopped and started by {}",
                theirs.holder()
            ));
        }
        // Stopped under a mark, it is autoheal's to start again: this action's (an earlier
        // attempt's) or another's, which it waits for.
        let marked = mark.is_some();
        let refusal = if is_opted_out(&instances::tags(&instance)) {
            Some(format!("it {}", autoheal_aws::tags::opted_out_phrase()))
        } else if let Some(why) = self
            .types
            .facts(&self.ec2, &instance)
            .await?
            .risk
            .why_unsafe()
        {
            Some(why.to_owned())
        } else {
            groups::group_of(&self.autoscaling, instance_id)
                .await?
                .map(|group| {
                    format!(
                        "it is in Auto Scaling group {group}, which would replace it once stopped"
                    )
                })
        };
        look.seen.host = Some(Host {
            id: instance_id.to_owned(),
            root: instance.root_device_name() == Some(device),
            running_or_marked: state == Some(InstanceStateName::Running) || marked,
            state: state
                .as_ref()
                .map_or("in an unknown state", |s| s.as_str())
                .to_owned(),
            refusal,
        });
        look.place = Some(Place {
            instance,
            device: device.to_owned(),
        });
        Ok(look)
    }
}

fn opted_out(volume: &Volume) -> bool {
    pairs_opt_out(volume.tags().iter().filter_map(|t| t.key().zip(t.value())))
}

//! What EBS says of a volume's health (`DescribeVolumeStatus`), and the one repair that loses
//! nothing: re-enabling I/O that EBS disabled.
//!
//! When EBS finds a volume's data possibly inconsistent, it disables I/O to it (the status
//! check `io-enabled` fails, with the event `potential-data-inconsistency` and the action
//! `enable-volume-io`), unless the volume's `AutoEnableIO` attribute has EBS re-enable it
//! itself. `EnableVolumeIO` turns I/O back on; the file system should then be checked.

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{VolumeAttributeName, VolumeStatusName};

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

/// The live status of a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeHealth {
    /// `ok`, `warning`, `impaired`, `insufficient-data`; `None` when EBS reports nothing.
    pub status: Option<String>,
    /// EBS disabled I/O to the volume (`io-enabled` failed).
    pub io_disabled: bool,
    /// `io-performance` (provisioned-IOPS volumes): `normal`, `degraded`, `stalled`, ….
    pub io_performance: Option<String>,
    /// The descriptions of the volume's status events.
    pub events: Vec<String>,
}

/// Whether an `io-enabled` check's status says I/O is off.
fn io_off(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "failed" | "disabled" | "impaired"
    )
}

/// Reads the volume's status checks and events.
pub async fn read(ec2: &Ec2Client, volume_id: &str) -> Result<VolumeHealth, HealError> {
    // One id, one answer: EC2 pages this call only when no ids are named.
    let items = ec2
        .describe_volume_status()
        .volume_ids(volume_id)
        .send()
        .await
        .map_err(|e| api_error("DescribeVolumeStatus", e))?
        .volume_statuses
        .unwrap_or_default();
    let mut health = VolumeHealth::default();
    for item in items {
        if item.volume_id() != Some(volume_id) {
            continue;
        }
        if let Some(info) = item.volume_status() {
            health.status = info.status().map(|s| s.as_str().to_owned());
            for detail in info.details() {
                match (detail.name(), detail.status()) {
                    (Some(VolumeStatusName::IoEnabled), Some(status)) => {
                        health.io_disabled = io_off(status);
                    }
                    (Some(VolumeStatusName::IoPerformance), Some(status)) => {
                        health.io_performance = Some(status.to_owned());
                    }
                    _ => {}
                }
            }
        }
        health.events = item
            .events()
            .iter()
            .filter_map(|event| {
                event
                    .description()
                    .or(event.event_type())
                    .map(str::to_owned)
            })
            .collect();
    }
    Ok(health)
}

/// Whether EBS re-enables I/O to the volume itself (`AutoEnableIO`).
pub async fn auto_enable_io(ec2: &Ec2Client, volume_id: &str) -> Result<bool, HealError> {
    let output = ec2
        .describe_volume_attribute()
        .volume_id(volume_id)
        .attribute(VolumeAttributeName::AutoEnableIo)
        .send()
        .await
        .map_err(|e| api_error("DescribeVolumeAttribute", e))?;
    Ok(output
        .auto_enable_io()
        .and_then(|value| value.value())
        .unwrap_or(false))
}

/// Re-enables I/O to a volume EBS disabled it on.
pub async fn enable_io(ec2: &Ec2Client, volume_id: &str) -> Result<(), HealError> {
    ec2.enable_volume_io()
        .volume_id(volume_id)
        .send()
        .await
        .map_err(|e| api_error("EnableVolumeIO", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_is_off_only_when_the_check_says_so() {
        for off in ["failed", "Disabled", "impaired"] {
            assert!(io_off(off), "{off}");
        }
        for on in ["passed", "insufficient-data", ""] {
            assert!(!io_off(on), "{on}");
        }
    }
}

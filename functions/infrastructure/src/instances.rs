//! Reads of one EC2 instance that the layer's actions share: the instance itself (or that it
//! is gone), what its type allows, and whether a person protects it from a stop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ec2::types::{
    DeviceType, Instance, InstanceAttributeName, InstanceLifecycleType, InstanceStateName,
    InstanceType,
};

use autoheal_aws::errors::api_error;
use autoheal_core::HealError;

// One instance by id; `None` when EC2 does not know it.
pub use autoheal_aws::lookups::find_instance as describe;

/// Whether the instance is terminated or on its way there: nothing is left to heal.
pub fn is_terminated(instance: &Instance) -> bool {
    matches!(
        instance.state().and_then(|s| s.name()),
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    )
}

/// The instance's tags as a map.
pub fn tags(instance: &Instance) -> BTreeMap<String, String> {
    instance
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value()?.to_owned())))
        .collect()
}

/// What stands between an instance and a safe stop and start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopStartRisk {
    /// The root volume is instance store: it does not survive a stop.
    pub instance_store_root: bool,
    /// The instance type has instance-store volumes: their data is lost on stop.
    pub instance_store_volumes: bool,
    /// EC2 did not describe the instance's type: whether it has instance-store volumes is not
    /// known, so a stop could erase them.
    pub instance_storage_unknown: bool,
    /// A spot instance may not come back after a stop.
    pub spot: bool,
}

impl StopStartRisk {
    pub fn why_unsafe(&self) -> Option<&'static str> {
        if self.instance_store_root {
            Some("its root device is instance store, which does not survive a stop")
        } else if self.instance_store_volumes {
            Some("its instance type has instance-store volumes, whose data a stop erases")
        } else if self.instance_storage_unknown {
            Some("EC2 did not describe its instance type: a stop could erase instance-store data")
        } else if self.spot {
            Some("it is a spot instance, which may not be started again once stopped")
        } else {
            None
        }
    }
}

/// What the instance's type and purchase say about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub risk: StopStartRisk,
    /// Its type supports EC2's simplified automatic recovery.
    pub auto_recovery_supported: bool,
}

/// What each instance type allows, as `DescribeInstanceTypes` describes it, kept for the
/// container's life: a type's description (whether it has instance storage, whether it
/// supports automatic recovery) does not change, so each type is asked for once, not by every
/// look and action of every event.
#[derive(Debug, Clone, Default)]
pub struct InstanceTypes {
    described: Arc<Mutex<BTreeMap<String, TypeFacts>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TypeFacts {
    /// EC2 described the type: the two below are what it said, not a default.
    described: bool,
    instance_storage: bool,
    auto_recovery: bool,
}

impl InstanceTypes {
    /// The instance's facts: its own (its root device, its lifecycle) and its type's.
    pub async fn facts(&self, ec2: &Ec2Client, instance: &Instance) -> Result<Facts, HealError> {
        let of_type = match instance.instance_type() {
            Some(instance_type) => self.of_type(ec2, instance_type).await?,
            None => TypeFacts::default(),
        };
        Ok(Facts {
            risk: StopStartRisk {
                instance_store_root: instance.root_device_type()
                    == Some(&DeviceType::InstanceStore),
                instance_store_volumes: of_type.instance_storage,
                instance_storage_unknown: !of_type.described,
                spot: instance.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
            },
            auto_recovery_supported: of_type.auto_recovery,
        })
    }

    async fn of_type(
        &self,
        ec2: &Ec2Client,
        instance_type: &InstanceType,
    ) -> Result<TypeFacts, HealError> {
        if let Some(known) = self.known().get(instance_type.as_str()) {
            return Ok(*known);
        }
        // One type, named: one answer, no page to follow.
        let described = ec2
            .describe_instance_types()
            .instance_types(instance_type.clone())
            .send()
            .await
            .map_err(|e| api_error("DescribeInstanceTypes", e))?;
        let mut of_type = TypeFacts::default();
        for info in described.instance_types() {
            of_type.described = true;
            of_type.instance_storage |= info.instance_storage_supported() == Some(true);
            of_type.auto_recovery |= info.auto_recovery_supported() == Some(true);
        }
        // Only what EC2 described is kept: a type it did not is asked for again next time.
        if of_type.described {
            self.known()
                .insert(instance_type.as_str().to_owned(), of_type);
        }
        Ok(of_type)
    }

    fn known(&self) -> MutexGuard<'_, BTreeMap<String, TypeFacts>> {
        // Held for a lookup or an insert, never across a request: a panic cannot leave the
        // map half-written.
        self.described
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a person turned on stop protection (`DisableApiStop`): `StopInstances` is refused
/// until they turn it off.
pub async fn stop_protected(ec2: &Ec2Client, instance_id: &str) -> Result<bool, HealError> {
    let output = ec2
        .describe_instance_attribute()
        .instance_id(instance_id)
        .attribute(InstanceAttributeName::DisableApiStop)
        .send()
        .await
        .map_err(|e| api_error("DescribeInstanceAttribute", e))?;
    Ok(output
        .disable_api_stop()
        .and_then(|value| value.value())
        .unwrap_or(false))
}

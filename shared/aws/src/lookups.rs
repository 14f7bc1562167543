//! Lookups more than one layer makes, each behind the cargo feature of its service so that a
//! function links only the SDKs it uses.

#[cfg(feature = "ec2")]
pub use ec2::describe_instance;

#[cfg(feature = "ec2")]
mod ec2 {
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::types::Instance;

    use autoheal_core::HealError;

    use crate::errors::api_error;

    /// One instance by id, as `DescribeInstances` reports it; an error names the id when the
    /// service does not know it.
    pub async fn describe_instance(ec2: &Client, instance_id: &str) -> Result<Instance, HealError> {
        ec2.describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| api_error("DescribeInstances", e))?
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|instance| instance.instance_id() == Some(instance_id))
            .cloned()
            .ok_or_else(|| HealError::new(format!("DescribeInstances: no instance {instance_id}")))
    }
}

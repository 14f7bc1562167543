//! The desired-count adjustment of a restart: tasks added so that capacity does not dip
//! while tasks are replaced, recorded on the service, and put back once the new deployment
//! has settled (see [`super::rollout::steady`]).

use std::collections::BTreeMap;

use aws_sdk_ecs::types::Service;

use autoheal_aws::errors::api_error;
use autoheal_core::{HealError, HealOutcome};

use super::ServiceRestarter;
use super::rollout::Rollout;

/// The service tag recording a desired-count adjustment: `<token> <before> <after>`.
pub const DESIRED_COUNT_TAG: &str = "autoheal:desired-count";

/// How long a new deployment gets before autoheal looks again whether it is steady.
pub const SETTLE_INTERVAL_SECONDS: u64 = 60;

/// A desired-count adjustment recorded on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment<'a> {
    pub token: &'a str,
    pub before: i32,
    pub after: i32,
}

impl<'a> Adjustment<'a> {
    pub fn parse(value: &'a str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let adjustment = Adjustment {
            token: parts.next()?,
            before: parts.next()?.parse().ok()?,
            after: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(adjustment)
    }

    pub fn render(&self) -> String {
        format!("{} {} {}", self.token, self.before, self.after)
    }
}

/// The desired count during a restart: `adjustment` more, within the limits; `None` when
/// nothing is to be added.
pub fn adjusted_count(
    desired: i32,
    adjustment: u32,
    max_desired_count: Option<u32>,
) -> Option<i32> {
    let limit = max_desired_count
        .unwrap_or(autoheal_core::ECS_MAX_TASKS_PER_SERVICE)
        .min(autoheal_core::ECS_MAX_TASKS_PER_SERVICE);
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let target = desired
        .saturating_add(i32::try_from(adjustment).unwrap_or(i32::MAX))
        .min(limit);
    (target > desired).then_some(target)
}

/// The desired-count adjustment recorded on the service, if any.
pub(super) fn recorded_adjustment(service: &Service) -> Option<Adjustment<'_>> {
    service
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(DESIRED_COUNT_TAG))
        .and_then(|tag| tag.value())
        .and_then(Adjustment::parse)
}

impl ServiceRestarter {
    /// Puts the desired count back once the new deployment has settled, if it is still
    /// what autoheal set; until then the action continues. A deployment that failed with
    /// nothing rolling it back never settles: the count is left raised, for a person.
    pub(super) async fn settle(
        &self,
        cluster: &str,
        name: &str,
        service: &Service,
        adjustment: Adjustment<'_>,
    ) -> Result<HealOutcome, HealError> {
        let Adjustment { before, after, .. } = adjustment;
        let desired = service.desired_count();
        let details = BTreeMap::from([
            ("desired_count_before".to_owned(), before.to_string()),
            ("desired_count_after".to_owned(), after.to_string()),
        ]);
        if desired != after {
            return Ok(HealOutcome::healed(
                format!(
                    "service {name} in cluster {cluster} has desired count {desired}, not the {after} autoheal set: its own scaling owns it now"
                ),
                details,
            ));
        }
        match Rollout::of(service) {
            Rollout::Steady => {}
            failed @ Rollout::Failed { .. } => {
                return Err(HealError::new(format!(
                    "the new deployment of service {name} in cluster {cluster} did not settle: {}; its desired count stays {after} (autoheal raised it from {before}) for a person to decide",
                    failed.describe()
                )));
            }
            waiting => {
                return Ok(HealOutcome::Continuing {
                    summary: format!(
                        "the new deployment of service {name} in cluster {cluster} is not steady yet ({}); the desired count stays {after}",
                        waiting.describe()
                    ),
                    details,
                    resume_after_seconds: SETTLE_INTERVAL_SECONDS,
                });
            }
        }
        self.update(cluster, name, false, Some(before)).await?;
        Ok(HealOutcome::healed(
            format!(
                "the new deployment of service {name} in cluster {cluster} is steady: desired count back from {after} to {before}"
            ),
            details,
        ))
    }

    /// Records the adjustment on the service before making it, so that a retried step finds
    /// it and never adds twice.
    pub(super) async fn record_adjustment(
        &self,
        service: &Service,
        adjustment: &Adjustment<'_>,
    ) -> Result<(), HealError> {
        let arn = service
            .service_arn()
            .ok_or_else(|| HealError::new("DescribeServices returned no service ARN"))?;
        self.ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(DESIRED_COUNT_TAG)
                    .value(adjustment.render())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("TagResource", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adjustment_stays_within_the_limits() {
        assert_eq!(adjusted_count(4, 2, None), Some(6));
        assert_eq!(adjusted_count(4, 2, Some(5)), Some(5));
        assert_eq!(adjusted_count(5, 2, Some(5)), None, "already at the limit");
        assert_eq!(adjusted_count(4, 0, None), None);
        assert_eq!(
            adjusted_count(4_999, 5, None),
            Some(5_000),
            "the service quota"
        );
        assert_eq!(adjusted_count(4, 2, Some(9_999)), Some(6));
    }

    #[test]
    fn an_adjustment_round_trips_on_its_tag() {
        let adjustment = Adjustment {
            token: "abc",
            before: 4,
            after: 5,
        };
        assert_eq!(Adjustment::parse(&adjustment.render()), Some(adjustment));
        for bad in ["", "abc 4", "abc four 5", "abc 4 5 6"] {
            assert_eq!(Adjustment::parse(bad), None, "{bad:?}");
        }
    }
}

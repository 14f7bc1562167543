//! An operator's reset: the open incident of a rule on a resource closes, recorded and
//! notified, so that autoheal acts on the resource again at its next ALARM.

use std::collections::BTreeMap;

use tracing::warn;

use super::Engine;
use super::error::EngineError;
use super::run::MAX_CONFLICT_RETRIES;
use super::settings::effective_mode;
use crate::model::place::Place;
use crate::model::record::{HealingRecord, HealingStatus, RunPhase};
use crate::policy::reach::Reached;
use crate::ports::{Clock, FollowUps, Healer, Notifier, ResourceKey, StateStore};
use crate::report::notice::Notice;

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Engine<S, N, H, C, F> {
    /// An operator closes the open incident of `rule` on `resource_id` (typically an escalated
    /// one): autoheal acts on the resource again at its next ALARM. Recorded and notified.
    pub async fn reset(
        &self,
        rule: &str,
        resource_id: &str,
        run_id: &str,
    ) -> Result<HealingRecord, EngineError> {
        self.reset_in(rule, resource_id, None, run_id).await
    }

    /// [`Engine::reset`] of a resource in `place`, an account or region the deployment heals
    /// besides its own (`None`: at home); a place it does not heal is refused.
    pub async fn reset_in(
        &self,
        rule: &str,
        resource_id: &str,
        place: Option<Place>,
        run_id: &str,
    ) -> Result<HealingRecord, EngineError> {
        let (account, region) = match &place {
            Some(place) => (Some(place.account.clone()), Some(place.region.clone())),
            None => (None, None),
        };
        let place = match &place {
            None => None,
            Some(place) => match self
                .settings
                .reach
                .judge(Some(&place.account), Some(&place.region))
            {
                Ok(Reached::Elsewhere(place)) => Some(place),
                Ok(Reached::Home) => None,
                Err(why) => return Err(EngineError::Refused(why.to_string())),
            },
        };
        let rule = self
            .rules
            .get(rule)
            .filter(|rule| rule.layer == self.layer)
            .ok_or_else(|| {
                EngineError::Refused(format!("the {} layer has no rule `{rule}`", self.layer))
            })?;
        let key = ResourceKey {
            rule: rule.name.clone(),
            resource_id: resource_id.to_owned(),
            place,
        };
        for _ in 0..MAX_CONFLICT_RETRIES {
            let now = self.clock.now();
            let loaded = self.store.load(&key, run_id).await?;
            let state = &loaded.state;
            let Some(incident) = state
                .incident
                .as_ref()
                .filter(|incident| incident.resolved_at.is_none())
            else {
                return Err(EngineError::Refused(format!(
                    "`{}` has no open incident on {resource_id}",
                    rule.name
                )));
            };
            if state.lease.as_ref().is_some_and(|lease| lease.is_held(now)) {
                return Err(EngineError::Refused(format!(
                    "a run of `{}` is working on {resource_id}: reset once it ends",
                    rule.name
                )));
            }
            let mut next = state.clone();
            next.version += 1;
            next.lease = None;
            if let Some(open) = next.incident.as_mut() {
                open.resolved_at = Some(now);
            }
            if !self.store.save(&key, state.version, &next).await? {
                continue;
            }
            let record = HealingRecord {
                id: run_id.to_owned(),
                event_id: format!("reset:{run_id}"),
                alarm_name: String::new(),
                rule: rule.name.clone(),
                layer: rule.layer,
                action: rule.action.kind().to_owned(),
                resource_id: resource_id.to_owned(),
                account,
                region,
                role_session: None,
                status: HealingStatus::Completed,
                phase: RunPhase::Reset,
                mode: effective_mode(&self.settings, rule),
                started_at: now,
                ended_at: Some(now),
                attempt: incident.attempts,
                incident_id: Some(incident.id.clone()),
                skip_reason: None,
                error: None,
                summary: Some(match incident.escalated_at {
                    Some(at) => format!(
                        "incident {} closed by an operator after {} attempt(s) (escalated at {})",
                        incident.id,
                        incident.attempts,
                        at.to_rfc3339()
                    ),
                    None => format!(
                        "incident {} closed by an operator after {} attempt(s)",
                        incident.id, incident.attempts
                    ),
                }),
                details: BTreeMap::new(),
            };
            self.store.put_record(&record).await?;
            if let Err(error) = self
                .notifier
                .notify(&Notice::healing(record.clone(), rule))
                .await
            {
                warn!(rule = %rule.name, resource = %resource_id, %error, "notification not sent");
            }
            return Ok(record);
        }
        Err(EngineError::Refused(format!(
            "the state of `{}` on {resource_id} kept changing: try again",
            rule.name
        )))
    }
}

//! Whether an event is one this deployment heals, and where: at home with its own
//! credentials, elsewhere (a member account, another region) with that place's clients, or
//! not at all. Decided before anything is read or written for the event.

use serde_json::Value;

use crate::model::place::{MemberAccounts, Place, Reach};
use crate::policy::followup::CHECK_SOURCE;

/// Where an event is healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// In the deployment's own account and region.
    Home,
    /// In another account or region the deployment serves.
    Elsewhere(Place),
}

/// Why an event is out of the deployment's reach: nothing is read, written or done for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfReach {
    #[error("the event names no {0}: this deployment heals only where it is told to")]
    Unnamed(&'static str),
    #[error(
        "account {account} is not one this deployment heals ({allowed}): add it to the stack's MemberAccounts, or its OrganizationId, to heal there"
    )]
    Account { account: String, allowed: String },
    #[error(
        "region {region} is not one this deployment heals ({allowed}): add it to the stack's MemberRegions to heal there"
    )]
    Region { region: String, allowed: String },
}

impl Reach {
    /// Where an event from `account` and `region` is healed, or why it is not.
    pub fn judge(
        &self,
        account: Option<&str>,
        region: Option<&str>,
    ) -> Result<Reached, OutOfReach> {
        let Some(home) = &self.home else {
            return Ok(Reached::Home);
        };
        let account = account.ok_or(OutOfReach::Unnamed("account"))?;
        let region = region.ok_or(OutOfReach::Unnamed("region"))?;
        if account != home.account && !self.members.admits(account) {
            return Err(OutOfReach::Account {
                account: shown(account),
                allowed: self.accounts_allowed(home),
            });
        }
        // The stack's own account is healed in its own region only: its functions' own
        // permissions stop there, and no member footprint forwards its other regions' alarms.
        let at_home = account == home.account;
        if region != home.region && (at_home || !self.regions.contains(region)) {
            return Err(OutOfReach::Region {
                region: shown(region),
                allowed: if at_home {
                    format!(
                        "its own account only in {}: deploy a stack in that region to heal there",
                        home.region
                    )
                } else {
                    self.regions_allowed(home)
                },
            });
        }
        if account == home.account && region == home.region {
            Ok(Reached::Home)
        } else {
            Ok(Reached::Elsewhere(Place::new(account, region)))
        }
    }

    /// The place whose clients handle `payload` (an alarm state change, or one of autoheal's
    /// follow-ups, whose `detail` carries its alarm) when that is an allowed place other than
    /// home; `None` for everything the home engine handles: its own events, those out of
    /// reach (which it refuses) and payloads that name no place (which it rejects or
    /// refuses). It reads only these fields: the engine parses and checks the payload.
    pub fn route(&self, payload: &Value) -> Option<Place> {
        let follow_up = payload.get("source").and_then(Value::as_str) == Some(CHECK_SOURCE);
        let named = |field: &str| {
            let holder = if follow_up {
                payload.get("detail").and_then(|detail| detail.get("alarm"))
            } else {
                Some(payload)
            };
            holder
                .and_then(|holder| holder.get(field))
                .and_then(Value::as_str)
        };
        match self.judge(named("account"), named("region")) {
            Ok(Reached::Elsewhere(place)) => Some(place),
            Ok(Reached::Home) | Err(_) => None,
        }
    }

    fn accounts_allowed(&self, home: &Place) -> String {
        match &self.members {
            MemberAccounts::None => format!("only its own, {}", home.account),
            MemberAccounts::Organization => "its organization's".to_owned(),
            MemberAccounts::Listed(accounts) => {
                let listed: Vec<&str> = std::iter::once(home.account.as_str())
                    .chain(accounts.iter().map(String::as_str))
                    .collect();
                format!("it heals {}", listed.join(", "))
            }
        }
    }

    fn regions_allowed(&self, home: &Place) -> String {
        let listed: Vec<&str> = std::iter::once(home.region.as_str())
            .chain(self.regions.iter().map(String::as_str))
            .collect();
        format!("it heals {}", listed.join(", "))
    }
}

/// A value from an event, as it may be shown: at most 64 characters, control characters
/// escaped (an event out of reach may be anyone's).
fn shown(value: &str) -> String {
    value
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn organization() -> Reach {
        Reach {
            home: Some(Place::new("111111111111", "eu-west-1")),
            members: MemberAccounts::Listed(BTreeSet::from(["222222222222".to_owned()])),
            regions: BTreeSet::from(["us-east-1".to_owned()]),
        }
    }

    #[test]
    fn a_deployment_that_does_not_know_its_home_heals_every_event_at_home() {
        let reach = Reach::default();
        assert_eq!(reach.judge(None, None), Ok(Reached::Home));
        assert_eq!(
            reach.judge(Some("333333333333"), Some("ap-south-1")),
            Ok(Reached::Home)
        );
    }

    #[test]
    fn home_members_and_their_regions_are_reached_and_everything_else_is_refused() {
        let reach = organization();
        assert_eq!(
            reach.judge(Some("111111111111"), Some("eu-west-1")),
            Ok(Reached::Home)
        );
        assert_eq!(
            reach.judge(Some("222222222222"), Some("eu-west-1")),
            Ok(Reached::Elsewhere(Place::new("222222222222", "eu-west-1")))
        );
        assert_eq!(
            reach.judge(Some("222222222222"), Some("us-east-1")),
            Ok(Reached::Elsewhere(Place::new("222222222222", "us-east-1")))
        );
        // The stack's own account, in another region: neither its permissions nor a
        // forwarding rule reach there.
        let Err(home_elsewhere) = reach.judge(Some("111111111111"), Some("us-east-1")) else {
            panic!("the home account is healed in the home region only");
        };
        assert!(
            home_elsewhere
                .to_string()
                .contains("its own account only in eu-west-1"),
            "{home_elsewhere}"
        );
        let Err(account) = reach.judge(Some("333333333333"), Some("eu-west-1")) else {
            panic!("not a member");
        };
        assert_eq!(
            account.to_string(),
            "account 333333333333 is not one this deployment heals (it heals 111111111111, 222222222222): add it to the stack's MemberAccounts, or its OrganizationId, to heal there"
        );
        let Err(region) = reach.judge(Some("222222222222"), Some("ap-south-1")) else {
            panic!("not a region served");
        };
        assert!(
            region.to_string().starts_with(
                "region ap-south-1 is not one this deployment heals (it heals eu-west-1, us-east-1)"
            ),
            "{region}"
        );
        assert_eq!(
            reach.judge(None, Some("eu-west-1")),
            Err(OutOfReach::Unnamed("account"))
        );
    }

    #[test]
    fn a_single_account_deployment_refuses_other_accounts_and_regions() {
        let reach = Reach {
            home: Some(Place::new("111111111111", "eu-west-1")),
            ..Reach::default()
        };
        assert!(
            reach
                .judge(Some("222222222222"), Some("eu-west-1"))
                .is_err()
        );
        assert!(
            reach
                .judge(Some("111111111111"), Some("us-east-1"))
                .is_err()
        );
        let organization = Reach {
            members: MemberAccounts::Organization,
            ..reach
        };
        assert!(
            organization
                .judge(Some("222222222222"), Some("eu-west-1"))
                .is_ok()
        );
    }

    #[test]
    fn a_payload_is_routed_by_its_own_place_or_its_follow_ups_alarm() {
        let reach = organization();
        let member = Some(Place::new("222222222222", "eu-west-1"));
        assert_eq!(
            reach.route(&json!({"account": "222222222222", "region": "eu-west-1"})),
            member
        );
        let follow_up = json!({
            "source": CHECK_SOURCE,
            "detail": {"alarm": {"account": "222222222222", "region": "eu-west-1"}}
        });
        assert_eq!(reach.route(&follow_up), member);
        for home_engine in [
            json!({"account": "111111111111", "region": "eu-west-1"}),
            json!({"account": "333333333333", "region": "eu-west-1"}),
            json!({"account": 222_222_222_222_u64, "region": "eu-west-1"}),
            json!({"detail": {}}),
        ] {
            assert_eq!(reach.route(&home_engine), None, "{home_engine}");
        }
    }

    #[test]
    fn what_an_event_names_is_shown_escaped_and_bounded() {
        let reach = organization();
        let forged = format!("x\n{}", "9".repeat(100));
        let Err(OutOfReach::Account { account, .. }) =
            reach.judge(Some(&forged), Some("eu-west-1"))
        else {
            panic!("a forged account is refused");
        };
        assert!(account.starts_with("x\\n9"), "{account}");
        assert!(account.len() <= 2 + 64, "{account}");
    }
}

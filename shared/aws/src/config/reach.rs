//! Where a function heals, from the environment: its home (this account, this region), the
//! member accounts of an organization and the regions it serves, the member role it assumes
//! there, and the budget of each account.

use std::collections::BTreeSet;

use autoheal_core::model::place::is_account_id;
use autoheal_core::{Limit, MemberAccounts, Place, Reach};

use super::env;
use super::startup::ConfigError;

/// What `AUTOHEAL_MEMBER_ACCOUNTS` says for every account of the organization.
pub const ORGANIZATION: &str = "organization";

/// Where the function heals, and the member role's name when it heals in member accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaching {
    pub reach: Reach,
    /// The member role's name (`AUTOHEAL_MEMBER_ROLE_NAME`), when member accounts are healed.
    pub member_role: Option<String>,
}

fn value(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A region name as AWS writes them (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
fn is_region_name(text: &str) -> bool {
    let mut parts = text.split('-');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let Some((number, middle)) = rest.split_last() else {
        return false;
    };
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && !middle.is_empty()
        && middle
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A role name IAM accepts: 1 to 64 of `[A-Za-z0-9+=,.@_-]`.
fn is_role_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// The items of a comma-separated list (blanks around them dropped); `None` when one is
/// empty (`a,,b`, a trailing comma).
fn items(list: &str) -> Option<Vec<&str>> {
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    items.iter().all(|item| !item.is_empty()).then_some(items)
}

/// Reads where the function heals through `lookup`; `home_region` is the region its SDK
/// configuration is in (Lambda's `AWS_REGION`). Without `AUTOHEAL_HOME_ACCOUNT` (the command
/// line, a function run by hand) every event is healed at home, as in one account; member
/// accounts or regions without it are a mistake.
pub fn read_reach(
    lookup: impl Fn(&str) -> Option<String>,
    home_region: &str,
) -> Result<Reaching, ConfigError> {
    let invalid = |name: &'static str, value: &str, reason: &str| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let members = match value(&lookup, env::MEMBER_ACCOUNTS) {
        None => MemberAccounts::None,
        Some(text) if text == ORGANIZATION => MemberAccounts::Organization,
        Some(text) => {
            let listed = items(&text)
                .ok_or_else(|| invalid(env::MEMBER_ACCOUNTS, &text, "an empty item"))?;
            if let Some(bad) = listed.iter().find(|item| !is_account_id(item)) {
                return Err(invalid(
                    env::MEMBER_ACCOUNTS,
                    &text,
                    &format!("`{bad}` is not a 12-digit account id"),
                ));
            }
            MemberAccounts::Listed(listed.into_iter().map(str::to_owned).collect())
        }
    };
    let regions: BTreeSet<String> = match value(&lookup, env::MEMBER_REGIONS) {
        None => BTreeSet::new(),
        Some(text) => {
            let listed =
                items(&text).ok_or_else(|| invalid(env::MEMBER_REGIONS, &text, "an empty item"))?;
            if let Some(bad) = listed.iter().find(|item| !is_region_name(item)) {
                return Err(invalid(
                    env::MEMBER_REGIONS,
                    &text,
                    &format!("`{bad}` is not a region name"),
                ));
            }
            listed
                .into_iter()
                .filter(|region| *region != home_region)
                .map(str::to_owned)
                .collect()
        }
    };
    let home = match value(&lookup, env::HOME_ACCOUNT) {
        Some(account) if is_account_id(&account) => Some(Place::new(account, home_region)),
        Some(account) => {
            return Err(invalid(
                env::HOME_ACCOUNT,
                &account,
                "not a 12-digit account id",
            ));
        }
        None if members != MemberAccounts::None || !regions.is_empty() => {
            return Err(ConfigError::Missing {
                name: env::HOME_ACCOUNT,
            });
        }
        None => None,
    };
    let member_role = match (&members, value(&lookup, env::MEMBER_ROLE_NAME)) {
        (MemberAccounts::None, _) => None,
        (_, None) => {
            return Err(ConfigError::Missing {
                name: env::MEMBER_ROLE_NAME,
            });
        }
        (_, Some(name)) if is_role_name(&name) => Some(name),
        (_, Some(name)) => {
            return Err(invalid(
                env::MEMBER_ROLE_NAME,
                &name,
                "not a role name (1 to 64 of A-Za-z0-9+=,.@_-)",
            ));
        }
    };
    Ok(Reaching {
        reach: Reach {
            home,
            members,
            regions,
        },
        member_role,
    })
}

/// `AUTOHEAL_ACCOUNT_BUDGET`: `N/SECONDS` in any one account, or none (unset, empty or
/// `off`).
pub fn read_account_budget(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Limit>, ConfigError> {
    match value(&lookup, env::ACCOUNT_BUDGET) {
        None => Ok(None),
        Some(text) => super::parse_limit(env::ACCOUNT_BUDGET, &text),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    use crate::config::env::lookup_in as lookup;

    const HOME: &str = "123456789012";

    fn reach(pairs: &[(&str, &str)]) -> Result<Reaching, String> {
        read_reach(lookup(pairs), "eu-west-1").map_err(|e| e.to_string())
    }

    #[test]
    fn one_account_heals_at_home_and_a_function_run_by_hand_everywhere_as_before() {
        let by_hand = reach(&[]).expect("nothing set");
        assert_eq!(by_hand.reach, Reach::default());
        assert_eq!(by_hand.member_role, None);
        let one_account = reach(&[(env::HOME_ACCOUNT, HOME)]).expect("the stack's");
        assert_eq!(
            one_account.reach,
            Reach {
                home: Some(Place::new(HOME, "eu-west-1")),
                members: MemberAccounts::None,
                regions: BTreeSet::new(),
            }
        );
        // The role name without member accounts is not used.
        let unused = reach(&[(env::HOME_ACCOUNT, HOME), (env::MEMBER_ROLE_NAME, "x")]);
        assert_eq!(unused.expect("set").member_role, None);
    }

    #[test]
    fn the_member_accounts_and_regions_are_read_with_the_member_role() {
        let listed = reach(&[
            (env::HOME_ACCOUNT, HOME),
            (env::MEMBER_ACCOUNTS, " 111111111111, 222222222222 "),
            (env::MEMBER_REGIONS, "eu-west-1,us-east-1, us-gov-west-1"),
            (env::MEMBER_ROLE_NAME, "autoheal-member"),
        ])
        .expect("listed");
        assert_eq!(
            listed.reach.members,
            MemberAccounts::Listed(BTreeSet::from([
                "111111111111".to_owned(),
                "222222222222".to_owned()
            ]))
        );
        assert_eq!(
            listed.reach.regions,
            BTreeSet::from(["us-east-1".to_owned(), "us-gov-west-1".to_owned()]),
            "the regions besides home's"
        );
        assert_eq!(listed.member_role.as_deref(), Some("autoheal-member"));
        let organization = reach(&[
            (env::HOME_ACCOUNT, HOME),
            (env::MEMBER_ACCOUNTS, "organization"),
            (env::MEMBER_ROLE_NAME, "autoheal-member"),
        ])
        .expect("organization");
        assert_eq!(organization.reach.members, MemberAccounts::Organization);
        assert!(organization.reach.regions.is_empty());
    }

    #[test]
    fn what_cannot_be_healed_safely_stops_the_function_with_the_variable_named() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (
                &[(env::MEMBER_ACCOUNTS, "111111111111")],
                "AUTOHEAL_HOME_ACCOUNT is not set",
            ),
            (
                &[(env::MEMBER_REGIONS, "us-east-1")],
                "AUTOHEAL_HOME_ACCOUNT is not set",
            ),
            (
                &[(env::HOME_ACCOUNT, "12345")],
                "AUTOHEAL_HOME_ACCOUNT=`12345` is invalid: not a 12-digit account id",
            ),
            (
                &[
                    (env::HOME_ACCOUNT, HOME),
                    (env::MEMBER_ACCOUNTS, "111111111111"),
                ],
                "AUTOHEAL_MEMBER_ROLE_NAME is not set",
            ),
            (
                &[
                    (env::HOME_ACCOUNT, HOME),
                    (env::MEMBER_ACCOUNTS, "111111111111,all"),
                ],
                "AUTOHEAL_MEMBER_ACCOUNTS=`111111111111,all` is invalid: `all` is not a 12-digit account id",
            ),
            (
                &[
                    (env::HOME_ACCOUNT, HOME),
                    (env::MEMBER_ACCOUNTS, "111111111111,"),
                ],
                "AUTOHEAL_MEMBER_ACCOUNTS=`111111111111,` is invalid: an empty item",
            ),
            (
                &[(env::HOME_ACCOUNT, HOME), (env::MEMBER_REGIONS, "Europe")],
                "AUTOHEAL_MEMBER_REGIONS=`Europe` is invalid: `Europe` is not a region name",
            ),
            (
                &[
                    (env::HOME_ACCOUNT, HOME),
                    (env::MEMBER_ACCOUNTS, ORGANIZATION),
                    (env::MEMBER_ROLE_NAME, "autoheal member"),
                ],
                "AUTOHEAL_MEMBER_ROLE_NAME=`autoheal member` is invalid",
            ),
        ];
        for (pairs, expected) in cases {
            let error = reach(pairs).expect_err("cannot start");
            assert!(error.starts_with(expected), "{pairs:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn a_function_reads_where_it_heals_with_the_rest_of_its_configuration() {
        let pairs = [
            (
                env::TOPIC_ARN,
                "arn:aws:sns:eu-west-1:123456789012:autoheal",
            ),
            (env::SCHEDULER_ROLE_ARN, "arn:aws:iam::123456789012:role/s"),
            (
                env::FUNCTION_ARN,
                "arn:aws:lambda:eu-west-1:123456789012:function:f",
            ),
            ("AWS_REGION", "eu-west-1"),
            (env::HOME_ACCOUNT, HOME),
            (env::MEMBER_ACCOUNTS, "organization"),
            (env::MEMBER_ROLE_NAME, "autoheal-member"),
            (env::ACCOUNT_BUDGET, "5/900"),
        ];
        let config = super::super::FunctionConfig::from_lookup(
            autoheal_core::Layer::Infrastructure,
            lookup(&pairs),
        )
        .expect("configured");
        assert_eq!(
            config.settings.reach.home,
            Some(Place::new(HOME, "eu-west-1"))
        );
        assert_eq!(config.settings.reach.members, MemberAccounts::Organization);
        assert_eq!(config.member_role.as_deref(), Some("autoheal-member"));
        assert_eq!(
            config.settings.account_budget,
            Some(Limit {
                limit: 5,
                window_seconds: 900
            })
        );
        let mut without_home = pairs.to_vec();
        without_home.retain(|(name, _)| *name != env::HOME_ACCOUNT);
        let error = super::super::FunctionConfig::from_lookup(
            autoheal_core::Layer::Infrastructure,
            lookup(&without_home),
        )
        .expect_err("members without a home");
        assert_eq!(
            error.to_string(),
            "AUTOHEAL_HOME_ACCOUNT is not set: the stack sets it; when running a function by \
             hand, set it to the 12-digit id of the account the function runs in \
             (AWS::AccountId), which it heals with its own credentials"
        );
    }

    #[test]
    fn region_names_are_as_aws_writes_them() {
        for good in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-5",
        ] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us--1",
            "useast-1",
            "us-east-1a",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn an_account_budget_is_n_per_seconds_or_none() {
        let budget = |value: &str| {
            read_account_budget(lookup(&[(env::ACCOUNT_BUDGET, value)])).map_err(|e| e.to_string())
        };
        assert_eq!(
            budget("5/900"),
            Ok(Some(Limit {
                limit: 5,
                window_seconds: 900
            }))
        );
        assert_eq!(budget(""), Ok(None));
        assert_eq!(budget("off"), Ok(None));
        assert_eq!(read_account_budget(lookup(&[])).ok(), Some(None));
        let bad = budget("5").expect_err("invalid");
        assert!(
            bad.starts_with("AUTOHEAL_ACCOUNT_BUDGET=`5` is invalid: not `N/SECONDS`; set it to")
                && bad.contains("parameter AccountBudget"),
            "{bad}"
        );
    }
}

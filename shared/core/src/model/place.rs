//! Where a resource lives, and where one deployment may heal: an account and a region, the
//! deployment's own (home) and the member accounts and regions of an organization it serves.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// An account and a region: where an alarm fired and where its resource lives. Two resources
/// of the same id in two places are two resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Place {
            account: account.into(),
            region: region.into(),
        }
    }

    /// The key suffix that sets a resource in this place apart from one of the same id
    /// elsewhere: `@<account>/<region>`.
    pub fn key_suffix(&self) -> String {
        format!("@{}/{}", self.account, self.region)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// Which other accounts a deployment heals in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MemberAccounts {
    /// None: the deployment heals its own account only.
    #[default]
    None,
    /// Any account whose events reach it: the central event bus admits only the
    /// organization's accounts.
    Organization,
    /// These accounts only.
    Listed(BTreeSet<String>),
}

impl MemberAccounts {
    pub fn admits(&self, account: &str) -> bool {
        match self {
            MemberAccounts::None => false,
            MemberAccounts::Organization => true,
            MemberAccounts::Listed(accounts) => accounts.contains(account),
        }
    }
}

/// Where one deployment may heal: its home, and the member accounts and other regions it
/// serves. A deployment that does not know its home (the command line against one account,
/// most tests) treats every event as home's, as before it reached any further.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The deployment's own account and region.
    pub home: Option<Place>,
    pub members: MemberAccounts,
    /// Regions healed besides the home region, in the member accounts (the stack's own
    /// account is healed in its own region only).
    pub regions: BTreeSet<String>,
}

/// An account id as AWS writes them: twelve digits.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|byte| byte.is_ascii_digit())
}

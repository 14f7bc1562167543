//! Changes a heal made that are put back when the incident resolves: capacity added, a DNS
//! weight zeroed, a route moved. The healer that made the change says how to undo it; the
//! engine keeps that in the resource's state and asks the same healer to put it back when the
//! alarm returns to OK.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One change to put back, in the words of the healer that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    /// What putting it back means, e.g. `restore-desired-capacity`; the healer dispatches on it.
    pub kind: String,
    /// The facts the healer needs: what it changed, from what, to what.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The attempt of the incident that made the change.
    pub attempt: u32,
    /// How many times putting it back failed (see `MAX_REVERT_TRIES`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
}

/// How many times autoheal tries to put one change back (the first try at the OK or the
/// resolution, then its own follow-ups, a minute apart and doubling, each after the previous
/// run's lease) before it asks a person. A revert that fails six times over an hour is no
/// throttle and no brief outage but a permission, a resource someone changed, a bug: trying
/// on would only repeat the failure, while the change stays in place and costs (capacity
/// added) or hides a fault (a weight at zero).
pub const MAX_REVERT_TRIES: u32 = 6;

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Revert {
    pub fn new(kind: impl Into<String>) -> Self {
        Revert {
            kind: kind.into(),
            params: BTreeMap::new(),
            attempt: 0,
            failures: 0,
        }
    }

    /// Adds a fact; builder style.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.params.insert(key.into(), value.to_string());
        self
    }

    /// Whether autoheal may still try to put it back (it has tries left).
    pub fn has_tries_left(&self) -> bool {
        self.failures < MAX_REVERT_TRIES
    }

    /// What it is, in words a person can act on: its kind, the attempt that made it, and the
    /// facts of the change (what, from what, to what).
    pub fn describe(&self) -> String {
        let facts: Vec<String> = self
            .params
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!(
            "`{}` of attempt {} ({})",
            self.kind,
            self.attempt,
            facts.join(", ")
        )
    }

    /// The fact `key`, or an error naming it (a revert stored by an older version, or edited).
    pub fn param(&self, key: &str) -> Result<&str, String> {
        self.params
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("revert `{}` has no `{key}`", self.kind))
    }
}

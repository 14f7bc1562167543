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
}

impl Revert {
    pub fn new(kind: impl Into<String>) -> Self {
        Revert {
            kind: kind.into(),
            params: BTreeMap::new(),
            attempt: 0,
        }
    }

    /// Adds a fact; builder style.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.params.insert(key.into(), value.to_string());
        self
    }

    /// The fact `key`, or an error naming it (a revert stored by an older version, or edited).
    pub fn param(&self, key: &str) -> Result<&str, String> {
        self.params
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("revert `{}` has no `{key}`", self.kind))
    }
}

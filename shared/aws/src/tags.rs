//! Resource tags every layer honours.

use std::collections::BTreeMap;

/// Resources tagged `autoheal:disabled=true` are never acted on.
pub const OPT_OUT_TAG: &str = "autoheal:disabled";

/// Whether a resource's tags opt it out of healing.
pub fn is_opted_out(tags: &BTreeMap<String, String>) -> bool {
    tags.get(OPT_OUT_TAG)
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Whether a list of (key, value) tag pairs opts a resource out.
pub fn pairs_opt_out<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    pairs
        .into_iter()
        .any(|(key, value)| key == OPT_OUT_TAG && value.trim().eq_ignore_ascii_case("true"))
}

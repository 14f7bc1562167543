//! Resource tags every layer honours, and the stack's scope: which resources autoheal may
//! change at all.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Resources tagged `autoheal:disabled=true` are never acted on.
pub const OPT_OUT_TAG: &str = "autoheal:disabled";

/// With the scope `tagged`, only resources tagged `autoheal:protect=true` (the tag detection
/// alarms) are acted on.
pub const PROTECT_TAG: &str = "autoheal:protect";

/// Which resources autoheal may change: the stack's `Scope` (`AUTOHEAL_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every resource a rule selects that did not opt out.
    All,
    /// Only resources tagged `autoheal:protect=true` that did not opt out.
    Tagged,
}

impl Scope {
    /// The scope a variable's value names: unset or empty is `all` (a function run by hand;
    /// the stack always sets it, to `tagged` unless told otherwise).
    pub fn parse(value: Option<&str>) -> Result<Scope, String> {
        match value.map(str::trim) {
            None | Some("") | Some("all") => Ok(Scope::All),
            Some("tagged") => Ok(Scope::Tagged),
            Some(other) => Err(format!("`{other}` is not a scope: `tagged` or `all`")),
        }
    }

    /// Why a resource with these tags is left alone, if it is.
    pub fn excludes<'a>(
        self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<&'static str> {
        let (mut disabled, mut protected) = (false, false);
        for (key, value) in tags {
            let on = value.trim().eq_ignore_ascii_case("true");
            disabled |= key == OPT_OUT_TAG && on;
            protected |= key == PROTECT_TAG && on;
        }
        if disabled {
            Some("is tagged autoheal:disabled=true")
        } else if self == Scope::Tagged && !protected {
            Some("is not tagged autoheal:protect=true (the stack's scope is `tagged`)")
        } else {
            None
        }
    }
}

static SCOPE: OnceLock<Scope> = OnceLock::new();

/// Sets the process's scope once, at start; later calls change nothing.
pub fn set_scope(scope: Scope) {
    let _ = SCOPE.set(scope);
}

/// The process's scope (`all` until set).
pub fn scope() -> Scope {
    SCOPE.get().copied().unwrap_or(Scope::All)
}

/// What keeps autoheal away from a resource under the process's scope, as a skip says it
/// ("X is tagged …").
pub fn opted_out_phrase() -> &'static str {
    match scope() {
        Scope::All => "is tagged autoheal:disabled=true",
        Scope::Tagged => {
            "is tagged autoheal:disabled=true, or is not tagged autoheal:protect=true (the \
             stack's scope is `tagged`)"
        }
    }
}

/// Whether a resource's tags keep autoheal away from it: opted out, or out of the scope.
pub fn is_opted_out(tags: &BTreeMap<String, String>) -> bool {
    pairs_opt_out(
        tags.iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    )
}

/// Whether a list of (key, value) tag pairs opts a resource out (`autoheal:disabled=true`),
/// whatever the scope: for what an action touches besides the resource it heals (the group a
/// member is handed to, the members a group replaces).
pub fn pairs_disabled<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    Scope::All.excludes(pairs).is_some()
}

/// Whether a list of (key, value) tag pairs keeps autoheal away from a resource.
pub fn pairs_opt_out<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    scope().excludes(pairs).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_read_from_its_variable_and_a_wrong_value_is_refused() {
        assert_eq!(Scope::parse(None), Ok(Scope::All));
        assert_eq!(Scope::parse(Some(" ")), Ok(Scope::All));
        assert_eq!(Scope::parse(Some("all")), Ok(Scope::All));
        assert_eq!(Scope::parse(Some(" tagged ")), Ok(Scope::Tagged));
        assert!(Scope::parse(Some("everything")).is_err());
    }

    #[test]
    fn an_opt_out_wins_and_the_tagged_scope_needs_the_protect_tag() {
        let none: [(&str, &str); 0] = [];
        let protected = [(PROTECT_TAG, "TRUE")];
        let both = [(PROTECT_TAG, "true"), (OPT_OUT_TAG, " true ")];
        let half = [(PROTECT_TAG, "false")];
        assert_eq!(Scope::All.excludes(none), None);
        assert_eq!(Scope::All.excludes(half), None);
        assert_eq!(Scope::Tagged.excludes(protected), None);
        assert!(
            Scope::Tagged
                .excludes(none)
                .is_some_and(|why| why.contains("protect"))
        );
        assert!(Scope::Tagged.excludes(half).is_some());
        for scope in [Scope::All, Scope::Tagged] {
            assert!(
                scope
                    .excludes(both)
                    .is_some_and(|why| why.contains("disabled"))
            );
        }
    }
}

//! The deployment's switches, read from the environment by the function's `main`.

use crate::model::limits::Limit;
use crate::model::place::Reach;
use crate::model::rules::{Mode, Rule};

/// Deployment-wide switches, read from the environment by the function's `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `Shadow` forces every rule into shadow mode; `Enforce` leaves each rule's own mode.
    pub mode: Mode,
    /// A disabled layer records nothing and acts on nothing.
    pub layer_enabled: bool,
    /// Write each outcome's metrics to stdout in CloudWatch's embedded metric format (the
    /// Lambda functions do; the command line does not).
    pub emit_metrics: bool,
    /// At most this many actions of this layer per rolling window (`None`: no layer budget).
    pub layer_budget: Option<Limit>,
    /// At most this many actions of the whole deployment per rolling window.
    pub global_budget: Option<Limit>,
    /// At most this many actions in any one account per rolling window, all layers together
    /// (`None`: no account budget).
    pub account_budget: Option<Limit>,
    /// Where the deployment heals: its home, and the member accounts and regions it serves.
    pub reach: Reach,
}

/// The shipped layer budget: 10 actions per 15 minutes.
pub const DEFAULT_LAYER_BUDGET: Limit = Limit {
    limit: 10,
    window_seconds: 900,
};
/// The shipped global budget: 20 actions per 15 minutes, all layers together.
pub const DEFAULT_GLOBAL_BUDGET: Limit = Limit {
    limit: 20,
    window_seconds: 900,
};

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Enforce,
            layer_enabled: true,
            emit_metrics: false,
            layer_budget: Some(DEFAULT_LAYER_BUDGET),
            global_budget: Some(DEFAULT_GLOBAL_BUDGET),
            account_budget: None,
            reach: Reach::default(),
        }
    }
}

/// The mode a rule runs in: the deployment's shadow mode overrides the rule's own.
pub(super) fn effective_mode(settings: &Settings, rule: &Rule) -> Mode {
    if settings.mode == Mode::Shadow {
        Mode::Shadow
    } else {
        rule.mode
    }
}

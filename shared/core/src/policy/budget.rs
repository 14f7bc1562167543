//! The safety governor's budgets: how many actions autoheal may start per rolling window, per
//! rule, per layer and across the deployment. A burst of alarms (a dependency outage, a bad
//! deploy) is not fifty separate faults: past the budget, heals are deferred to when the window
//! reopens, and a person hears about it once per window.
//!
//! Counts are kept per fixed window (aligned to the epoch) and an action is allowed only while
//! the previous window's count plus the current one's stays below the limit: any rolling window
//! of that length lies within those two, so it never holds more than the limit.

use chrono::{DateTime, Utc};

use crate::model::limits::{BudgetScope, Limit};
use crate::model::time::after;
use crate::model::trip::{TripKind, Tripped};
use crate::policy::decision::stable_hash;

/// One budget: its scope and limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub scope: BudgetScope,
    pub limit: Limit,
}

/// The fixed windows an instant falls in, for one window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub previous: DateTime<Utc>,
    pub current: DateTime<Utc>,
    pub next: DateTime<Utc>,
}

impl Windows {
    pub fn at(now: DateTime<Utc>, window_seconds: u64) -> Self {
        let length = i64::try_from(window_seconds.max(1)).unwrap_or(i64::MAX / 2);
        let start = now.timestamp().div_euclid(length) * length;
        let at = |seconds: i64| DateTime::from_timestamp(seconds, 0).unwrap_or(now);
        Windows {
            previous: at(start.saturating_sub(length)),
            current: at(start),
            next: at(start.saturating_add(length)),
        }
    }

    /// The window after `next`.
    fn after_next(&self) -> DateTime<Utc> {
        self.next + (self.next - self.current)
    }
}

/// A budget's counts: actions started in the previous and in the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub previous: u32,
    pub current: u32,
}

/// How many more actions `usage` allows now: the condition the claim writes the current
/// window's count under.
pub fn remaining(limit: Limit, usage: Usage) -> u32 {
    limit
        .limit
        .saturating_sub(usage.previous.saturating_add(usage.current))
}

/// The first spent budget, if any; `budgets` and `usages` go together.
pub fn check(budgets: &[Budget], usages: &[Usage], now: DateTime<Utc>) -> Option<Tripped> {
    budgets
        .iter()
        .zip(usages)
        .find(|(budget, usage)| remaining(budget.limit, **usage) == 0)
        .map(|(budget, usage)| {
            let windows = Windows::at(now, budget.limit.window_seconds);
            // The previous window's actions leave at the next boundary; if the current
            // window alone fills the budget, they leave one window later.
            let reopens_at = if usage.current >= budget.limit.limit {
                windows.after_next()
            } else {
                windows.next
            };
            Tripped {
                scope: budget.scope.clone(),
                kind: TripKind::Budget,
                limit: budget.limit,
                used: usage.previous.saturating_add(usage.current),
                reopens_at,
                window: windows.current,
                seen: None,
            }
        })
}

/// Spreads deferred retries over a minute after the window reopens, so that a burst that was
/// deferred together does not return together.
pub fn spread(reopens_at: DateTime<Utc>, key: &str) -> DateTime<Utc> {
    // Saturating: a window that reopens "never" (the latest instant) stays never.
    after(reopens_at, stable_hash(key, 0) % 60)
}

/// What the claim adds to one budget: one action in `window`, allowed while that window's
/// count is below `cap` and the previous window's is at most `previous` (the count `cap` was
/// computed from: the limit less it). Both are conditions of the claim, so the budget holds
/// whether the counts were read or presumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub scope: BudgetScope,
    pub window: DateTime<Utc>,
    pub window_seconds: u64,
    pub cap: u32,
    pub previous_window: DateTime<Utc>,
    pub previous: u32,
}

/// The spends of an action allowed by `budgets` with `usages` at `now`.
pub fn spends(budgets: &[Budget], usages: &[Usage], now: DateTime<Utc>) -> Vec<Spend> {
    budgets
        .iter()
        .zip(usages)
        .map(|(budget, usage)| {
            let windows = Windows::at(now, budget.limit.window_seconds);
            Spend {
                scope: budget.scope.clone(),
                window: windows.current,
                window_seconds: budget.limit.window_seconds,
                cap: budget.limit.limit.saturating_sub(usage.previous),
                previous_window: windows.previous,
                previous: usage.previous,
            }
        })
        .collect()
}

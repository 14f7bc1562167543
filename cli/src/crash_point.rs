//! A stop at a chosen point of a run, for the crash tests: with `AUTOHEAL_CRASH_POINT` set to
//! `before-action` (the claim is written, the follow-up scheduled, nothing done) or
//! `after-action` (the action is done, its end not yet recorded), `invoke` and `tick` say so
//! on stderr when they get there and wait to be killed. Unset, the healer is used as it is.

use std::time::Duration;

use autoheal_core::{
    Action, GroupView, HealError, HealOutcome, HealRequest, Healer, Layer, Revert, Rule,
};

/// The variable that names the point.
pub const VARIABLE: &str = "AUTOHEAL_CRASH_POINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    BeforeAction,
    AfterAction,
}

impl CrashPoint {
    /// The point named in the environment, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(VARIABLE).ok().as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some("before-action") => Ok(Some(CrashPoint::BeforeAction)),
            Some("after-action") => Ok(Some(CrashPoint::AfterAction)),
            Some(other) => Err(format!(
                "{VARIABLE}=`{other}` is invalid: set it to `before-action` or `after-action`, or \
                 unset it (only the crash tests set it)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeAction => "before-action",
            CrashPoint::AfterAction => "after-action",
        }
    }

    /// Says the point is reached, then waits for the kill.
    async fn park(self) {
        eprintln!("crash point {} reached", self.name());
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

/// A healer that stops at the crash point, if one is set.
pub struct Crashing<H> {
    pub inner: H,
    pub point: Option<CrashPoint>,
}

impl<H: Healer + Sync> Healer for Crashing<H> {
    fn layer(&self) -> Layer {
        self.inner.layer()
    }

    fn supports(&self, action: &Action) -> bool {
        self.inner.supports(action)
    }

    async fn group(&self, request: HealRequest<'_>) -> Result<Option<GroupView>, HealError> {
        self.inner.group(request).await
    }

    async fn is_gone(&self, rule: &Rule, resource_id: &str) -> Result<bool, HealError> {
        self.inner.is_gone(rule, resource_id).await
    }

    async fn heal(&self, request: HealRequest<'_>) -> Result<HealOutcome, HealError> {
        if self.point == Some(CrashPoint::BeforeAction) {
            CrashPoint::BeforeAction.park().await;
        }
        let outcome = self.inner.heal(request).await;
        if self.point == Some(CrashPoint::AfterAction) {
            CrashPoint::AfterAction.park().await;
        }
        outcome
    }

    async fn revert(
        &self,
        request: HealRequest<'_>,
        revert: &Revert,
    ) -> Result<HealOutcome, HealError> {
        self.inner.revert(request, revert).await
    }
}

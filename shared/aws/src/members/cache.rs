//! Member accounts' credentials, kept per account and reused until shortly before they
//! expire. One lock per account: the events of one account wait for the one `AssumeRole`
//! under way, never for another account's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

/// Credentials are assumed again once less than this is left of them: a Lambda invocation
/// lasts at most 15 minutes, so the credentials an event starts with outlive it.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// A member role's credentials and the session they were assumed under (the name CloudTrail
/// gives every request made with them).
#[derive(Debug, Clone)]
pub struct Assumed {
    pub credentials: Credentials,
    pub session: String,
}

impl Assumed {
    /// Whether they may still be used at `now`: more than [`REFRESH_BEFORE_EXPIRY`] is left
    /// of them (credentials without an expiry do not expire).
    pub fn usable_at(&self, now: SystemTime) -> bool {
        self.credentials.expiry().is_none_or(|expiry| {
            expiry
                .duration_since(now)
                .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
        })
    }
}

/// One account's entry: its credentials, and the last run that asked for them (a run names
/// the session of the credentials assumed for it).
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub assumed: Option<Assumed>,
    pub run: Option<String>,
}

/// The entries by account.
#[derive(Debug, Default)]
pub(super) struct Cache {
    accounts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Cache {
    /// `account`'s entry, created empty the first time.
    pub fn slot(&self, account: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(accounts.entry(account.to_owned()).or_default())
    }

    /// `account`'s credentials: those kept while usable at `now()`, or else what `assume`
    /// gives (kept when it succeeds; a failure is not kept, so the next event tries again).
    /// `run` (when given) becomes the run that last asked, and `assume` receives the run to
    /// name the session after.
    pub async fn get_or_assume<F, Fut, E>(
        &self,
        account: &str,
        run: Option<&str>,
        now: impl Fn() -> SystemTime,
        assume: F,
    ) -> Result<Assumed, E>
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = Result<Assumed, E>>,
    {
        let slot = self.slot(account);
        let mut slot = slot.lock().await;
        if let Some(run) = run {
            slot.run = Some(run.to_owned());
        }
        if let Some(assumed) = slot.assumed.as_ref().filter(|a| a.usable_at(now())) {
            return Ok(assumed.clone());
        }
        let assumed = assume(slot.run.clone()).await?;
        slot.assumed = Some(assumed.clone());
        Ok(assumed)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const START: Duration = Duration::from_secs(1_800_000_000);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + START + Duration::from_secs(seconds)
    }

    /// Credentials for an hour from `seconds`, under a session of `run`.
    fn assumed(seconds: u64, run: Option<String>) -> Assumed {
        Assumed {
            credentials: Credentials::new("key", "secret", None, Some(at(seconds + 3600)), "test"),
            session: format!("autoheal-{}", run.unwrap_or_default()),
        }
    }

    #[tokio::test]
    async fn credentials_are_reused_until_fifteen_minutes_before_they_expire() {
        let cache = Cache::default();
        let calls = AtomicU32::new(0);
        let get = |now: u64, run: &'static str| {
            let calls = &calls;
            let cache = &cache;
            async move {
                cache
                    .get_or_assume(
                        "111111111111",
                        Some(run),
                        || at(now),
                        |run| async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, String>(assumed(now, run))
                        },
                    )
                    .await
                    .expect("assumed")
            }
        };
        let first = get(0, "run-1").await;
        assert_eq!(first.session, "autoheal-run-1");
        // A second short of 45 minutes later, 15 minutes and a second are left: reused. At 45
        // minutes, 15 are left, too few for an invocation: assumed again.
        let reused = get(45 * 60 - 1, "run-2").await;
        assert_eq!(reused.session, "autoheal-run-1", "reused with its session");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let renewed = get(45 * 60, "run-3").await;
        assert_eq!(
            renewed.session, "autoheal-run-3",
            "assumed again for the run asking"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let after_expiry = Assumed {
            credentials: Credentials::new("k", "s", None, Some(at(10)), "test"),
            session: String::new(),
        };
        assert!(!after_expiry.usable_at(at(20)));
        let never_expiring = Assumed {
            credentials: Credentials::new("k", "s", None, None, "test"),
            session: String::new(),
        };
        assert!(never_expiring.usable_at(at(1_000_000)));
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_the_next_event_tries_again() {
        let cache = Cache::default();
        let failed = cache
            .get_or_assume(
                "111111111111",
                Some("run-1"),
                || at(0),
                |_| async { Err::<Assumed, _>("AccessDenied") },
            )
            .await;
        assert_eq!(failed.err(), Some("AccessDenied"));
        let later = cache
            .get_or_assume(
                "111111111111",
                Some("run-2"),
                || at(5),
                |run| async move { Ok::<_, &str>(assumed(5, run)) },
            )
            .await
            .expect("assumed");
        assert_eq!(later.session, "autoheal-run-2");
    }

    #[tokio::test]
    async fn a_refresh_without_a_run_names_the_session_after_the_last_run_that_asked() {
        let cache = Cache::default();
        let account = "111111111111";
        cache
            .get_or_assume(
                account,
                Some("run-7"),
                || at(0),
                |run| async move { Ok::<_, String>(assumed(0, run)) },
            )
            .await
            .expect("assumed");
        let refreshed = cache
            .get_or_assume(
                account,
                None,
                || at(3000),
                |run| async move { Ok::<_, String>(assumed(3000, run)) },
            )
            .await
            .expect("refreshed");
        assert_eq!(refreshed.session, "autoheal-run-7");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_events_of_one_account_assume_once_and_other_accounts_do_not_wait() {
        let cache = Arc::new(Cache::default());
        let calls = Arc::new(AtomicU32::new(0));
        // Account B's AssumeRole hangs until released; meanwhile C's completes.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let slow = |run: &'static str| {
            let cache = Arc::clone(&cache);
            let calls = Arc::clone(&calls);
            let released = Arc::clone(&released);
            tokio::spawn(async move {
                cache
                    .get_or_assume(
                        "111111111111",
                        Some(run),
                        || at(0),
                        |run| async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            if let Some(gate) = released.lock().await.take() {
                                gate.await.ok();
                            }
                            Ok::<_, String>(assumed(0, run))
                        },
                    )
                    .await
            })
        };
        let first = slow("run-1");
        let second = slow("run-2");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = cache
            .get_or_assume(
                "222222222222",
                Some("run-3"),
                || at(0),
                |run| async move { Ok::<_, String>(assumed(0, run)) },
            )
            .await
            .expect("another account's credentials while B's are being assumed");
        assert_eq!(other.session, "autoheal-run-3");
        release.send(()).expect("release B's AssumeRole");
        let first = first.await.expect("joined").expect("assumed");
        let second = second.await.expect("joined").expect("assumed");
        assert_eq!(first.session, second.session, "one session for both events");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one AssumeRole for B");
    }
}

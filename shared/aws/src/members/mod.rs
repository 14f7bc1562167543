//! Acting in a member account of an organization: the member role (member.yaml) assumed
//! through STS, its credentials kept per account until shortly before they expire, and the
//! SDK configuration of a place (an account and a region) built on them.
//!
//! The session of each assumption is named after the run that asked for it
//! (`autoheal-<run id>`), so that CloudTrail's record of every change made with it names the
//! run whose record says why; the member role admits only sessions named so.

mod cache;
mod error;

use std::sync::Arc;
use std::time::SystemTime;

use aws_config::identity::IdentityCache;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

pub use cache::{Assumed, REFRESH_BEFORE_EXPIRY};
pub use error::MemberRoleError;

use crate::errors::describe;
use cache::Cache;

/// What every session name starts with: the member role's trust admits only these.
pub const SESSION_PREFIX: &str = "autoheal-";

/// STS's limit on a session name's length.
const SESSION_NAME_MAX: usize = 64;

/// The session name of a run: `autoheal-<run id>`, each character STS does not take in a
/// session name (`[\w+=,.@-]`) as `-`, at most 64 characters.
pub fn session_name(run_id: &str) -> String {
    format!("{SESSION_PREFIX}{run_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(SESSION_NAME_MAX)
        .collect()
}

/// The partition of an ARN (`aws`, `aws-cn`, …): the home function's own ARN says which
/// partition the member roles are in.
pub fn partition_of_arn(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")
        .and_then(|rest| rest.split(':').next())
        .filter(|partition| !partition.is_empty())
}

/// The member role every member account holds under one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    /// The partition of the organization's accounts.
    pub partition: String,
    /// Its name (the stack's MemberRoleName).
    pub name: String,
}

impl MemberRole {
    /// Its ARN in `account`.
    pub fn arn(&self, account: &str) -> String {
        format!("arn:{}:iam::{account}:role/{}", self.partition, self.name)
    }
}

/// Access to the member accounts: the home account's SDK configuration, STS, and the
/// member role's credentials by account. Cheap to clone; clones share the credentials.
#[derive(Debug, Clone)]
pub struct MemberAccess {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    home_account: String,
    role: MemberRole,
    cache: Cache,
}

impl MemberAccess {
    /// Access from the home account (`base`, the function's own configuration), assuming
    /// `role` through `sts`.
    pub fn new(
        base: &SdkConfig,
        sts: aws_sdk_sts::Client,
        home_account: &str,
        role: MemberRole,
    ) -> Self {
        MemberAccess {
            inner: Arc::new(Inner {
                base: base.clone(),
                sts,
                home_account: home_account.to_owned(),
                role,
                cache: Cache::default(),
            }),
        }
    }

    /// [`Self::new`] with an STS client of `base`.
    pub fn from_sdk(base: &SdkConfig, home_account: &str, role: MemberRole) -> Self {
        Self::new(base, aws_sdk_sts::Client::new(base), home_account, role)
    }

    /// The account the function runs in.
    pub fn home_account(&self) -> &str {
        &self.inner.home_account
    }

    /// The member role.
    pub fn role(&self) -> &MemberRole {
        &self.inner.role
    }

    fn now(&self) -> SystemTime {
        self.inner
            .base
            .time_source()
            .map_or_else(SystemTime::now, |source| source.now())
    }

    /// The member role's credentials in `account` for the run `run_id`: those kept for the
    /// account while more than [`REFRESH_BEFORE_EXPIRY`] is left of them (with the session
    /// of the run that assumed them), or else assumed now in a session named after `run_id`.
    pub async fn credentials_for(
        &self,
        account: &str,
        run_id: &str,
    ) -> Result<Assumed, MemberRoleError> {
        self.inner
            .cache
            .get_or_assume(
                account,
                Some(run_id),
                || self.now(),
                |run| self.assume(account, run),
            )
            .await
    }

    /// The credentials a client acting in `account` signs with: those kept, or assumed
    /// again, in a session of the last run that asked for them.
    async fn current(&self, account: &str) -> Result<Assumed, MemberRoleError> {
        self.inner
            .cache
            .get_or_assume(
                account,
                None,
                || self.now(),
                |run| self.assume(account, run),
            )
            .await
    }

    async fn assume(&self, account: &str, run: Option<String>) -> Result<Assumed, MemberRoleError> {
        let role_arn = self.inner.role.arn(account);
        let session = session_name(run.as_deref().unwrap_or("refresh"));
        let failed = |cause: String| MemberRoleError {
            role_arn: role_arn.clone(),
            account: account.to_owned(),
            role_name: self.inner.role.name.clone(),
            cause,
        };
        let answer = self
            .inner
            .sts
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(&session)
            .send()
            .await
            .map_err(|error| failed(describe("AssumeRole", &error)))?;
        let given = answer
            .credentials()
            .ok_or_else(|| failed("AssumeRole answered without credentials".to_owned()))?;
        let expiry = SystemTime::try_from(*given.expiration())
            .map_err(|_| failed("AssumeRole answered an expiry out of range".to_owned()))?;
        Ok(Assumed {
            credentials: Credentials::new(
                given.access_key_id(),
                given.secret_access_key(),
                Some(given.session_token().to_owned()),
                Some(expiry),
                "autoheal-member-role",
            ),
            session,
        })
    }

    /// The SDK configuration of the clients acting in `account` and `region`: in the home
    /// account, the function's own (in `region`); in a member account, signed with the member
    /// role's credentials for that account, which it asks for at each request (kept, or
    /// assumed again when stale).
    pub fn sdk_for(&self, account: &str, region: &str) -> SdkConfig {
        let base = &self.inner.base;
        let mut builder = base.to_builder();
        if base.region().map(Region::as_ref) != Some(region) {
            builder.set_region(Some(Region::new(region.to_owned())));
        }
        if account != self.inner.home_account {
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(
                MemberCredentials {
                    access: self.clone(),
                    account: account.to_owned(),
                },
            )));
            // Each request asks the provider, which keeps the credentials itself.
            builder.set_identity_cache(Some(IdentityCache::no_cache()));
        }
        builder.build()
    }
}

/// The member role's credentials in one account, as a provider the SDK's clients ask.
#[derive(Debug)]
struct MemberCredentials {
    access: MemberAccess,
    account: String,
}

impl ProvideCredentials for MemberCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.access
                .current(&self.account)
                .await
                .map(|assumed| assumed.credentials)
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_named_after_its_run_in_the_characters_sts_takes() {
        assert_eq!(
            session_name("3f1c9a4e-1b2c-4d5e-8f90-0a1b2c3d4e5f"),
            "autoheal-3f1c9a4e-1b2c-4d5e-8f90-0a1b2c3d4e5f"
        );
        assert_eq!(session_name("run 1/2:é"), "autoheal-run-1-2--");
        assert_eq!(session_name("a+b=c,d.e@f_g"), "autoheal-a+b=c,d.e@f_g");
        let long = session_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with(SESSION_PREFIX));
    }

    #[test]
    fn the_member_roles_arn_is_in_the_homes_partition() {
        let partition = partition_of_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:x");
        assert_eq!(partition, Some("aws-cn"));
        assert_eq!(partition_of_arn("lambda:x"), None);
        assert_eq!(partition_of_arn("arn::lambda"), None);
        let role = MemberRole {
            partition: "aws-cn".to_owned(),
            name: "autoheal-member".to_owned(),
        };
        assert_eq!(
            role.arn("111111111111"),
            "arn:aws-cn:iam::111111111111:role/autoheal-member"
        );
    }

    fn base() -> SdkConfig {
        crate::config::lambda_sdk_config(|name| {
            (name == "AWS_REGION").then(|| "eu-west-1".to_owned())
        })
    }

    fn access() -> MemberAccess {
        MemberAccess::from_sdk(
            &base(),
            "123456789012",
            MemberRole {
                partition: "aws".to_owned(),
                name: "autoheal-member".to_owned(),
            },
        )
    }

    #[test]
    fn at_home_the_functions_own_configuration_serves_in_the_region_asked() {
        let access = access();
        let here = access.sdk_for("123456789012", "eu-west-1");
        assert_eq!(here.region().map(Region::as_ref), Some("eu-west-1"));
        let there = access.sdk_for("123456789012", "us-west-2");
        assert_eq!(there.region().map(Region::as_ref), Some("us-west-2"));
        for config in [&here, &there] {
            let provider = format!("{:?}", config.credentials_provider());
            assert!(
                provider.contains("EnvironmentVariableCredentialsProvider")
                    && !provider.contains("MemberCredentials"),
                "the function's own credentials: {provider}"
            );
        }
    }

    #[test]
    fn in_a_member_account_the_member_roles_credentials_sign_in_the_region_asked() {
        let member = access().sdk_for("111111111111", "us-west-2");
        assert_eq!(member.region().map(Region::as_ref), Some("us-west-2"));
        let provider = format!("{:?}", member.credentials_provider());
        assert!(
            provider.contains("MemberCredentials") && provider.contains("111111111111"),
            "{provider}"
        );
    }
}

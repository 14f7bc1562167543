//! The SDK configuration of a function in Lambda, read from the environment Lambda gives it: the
//! region (`AWS_REGION`), the execution role's credentials (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and an endpoint where one is configured
//! (`AWS_ENDPOINT_URL`: local runs against an emulator), trusting the roots of Amazon Trust
//! Services where AWS's endpoints chain to them (`trust`). aws-config's loader would also link,
//! and run at every cold start, what a function never uses in Lambda: profile files, instance
//! metadata, and the web identity, SSO and STS credential providers with an STS client. The
//! command line, the demo and the tests keep the loader (`sdk_config`).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::identity::IdentityCache;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;

use super::sdk::{DEFAULT_REGION, https_client_trusting, retries, timeouts};
use super::trust::Roots;

/// The variables read here besides the credentials (which the provider reads at each use).
pub mod env {
    pub const REGION: &str = "AWS_REGION";
    pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    pub const IGNORE_CONFIGURED_ENDPOINT_URLS: &str = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS";
    pub const USE_FIPS_ENDPOINT: &str = "AWS_USE_FIPS_ENDPOINT";
    pub const USE_DUALSTACK_ENDPOINT: &str = "AWS_USE_DUALSTACK_ENDPOINT";
}

fn value(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn is_true(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> bool {
    value(lookup, name).is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// The region a function runs in: `AWS_REGION` (which Lambda sets), else
/// `AWS_DEFAULT_REGION`, else the default region.
pub fn lambda_region(lookup: impl Fn(&str) -> Option<String>) -> String {
    value(&lookup, env::REGION)
        .or_else(|| value(&lookup, env::DEFAULT_REGION))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// The SDK configuration from the variables `lookup` reads, with the HTTPS client, retries and
/// timeouts every client of autoheal has.
pub fn lambda_sdk_config(lookup: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let region = lambda_region(&lookup);
    let endpoint_url = (!is_true(&lookup, env::IGNORE_CONFIGURED_ENDPOINT_URLS))
        .then(|| value(&lookup, env::ENDPOINT_URL))
        .flatten();
    let roots = Roots::for_function(&region, endpoint_url.as_deref(), &lookup);
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .identity_cache(IdentityCache::lazy().build())
        .http_client(https_client_trusting(roots))
        .retry_config(retries())
        .timeout_config(timeouts())
        .use_fips(is_true(&lookup, env::USE_FIPS_ENDPOINT))
        .use_dual_stack(is_true(&lookup, env::USE_DUALSTACK_ENDPOINT));
    if let Some(url) = endpoint_url {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// [`lambda_sdk_config`] from the process's environment.
pub fn lambda_sdk_from_env() -> SdkConfig {
    lambda_sdk_config(|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::env::lookup_in as lookup;

    #[test]
    fn the_region_and_endpoint_come_from_lambdas_environment() {
        let config = lambda_sdk_config(lookup(&[
            (env::REGION, "eu-west-1"),
            (env::DEFAULT_REGION, "us-west-2"),
            (env::ENDPOINT_URL, "http://127.0.0.1:5000"),
        ]));
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.credentials_provider().is_some());
        assert_eq!(config.use_fips(), Some(false));
    }

    #[test]
    fn without_a_region_or_an_endpoint_the_defaults_apply() {
        let config = lambda_sdk_config(lookup(&[(env::ENDPOINT_URL, " ")]));
        assert_eq!(config.region().map(Region::as_ref), Some(DEFAULT_REGION));
        assert_eq!(config.endpoint_url(), None);
        let ignored = lambda_sdk_config(lookup(&[
            (env::DEFAULT_REGION, "ap-south-1"),
            (env::ENDPOINT_URL, "http://127.0.0.1:5000"),
            (env::IGNORE_CONFIGURED_ENDPOINT_URLS, "true"),
            (env::USE_FIPS_ENDPOINT, "TRUE"),
        ]));
        assert_eq!(ignored.region().map(Region::as_ref), Some("ap-south-1"));
        assert_eq!(ignored.endpoint_url(), None);
        assert_eq!(ignored.use_fips(), Some(true));
    }
}

//! The AWS SDK configuration every client is built from: one HTTPS client, retries and
//! timeouts, and the local emulator's endpoint when one is given.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;

use super::trust::Roots;

/// The region used when neither the environment nor a profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Throttling, 5xx answers and dropped connections are retried with exponential backoff and
/// jitter, three attempts in all: what remains is the heal's failure, recorded and notified.
pub(super) fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// A call that hangs must not use up the invocation (300 s): each attempt gets 20 s, each
/// call with its retries 60 s, so a stalled endpoint ends as a recorded failure.
pub(super) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

/// The HTTPS client of the command line, the demo and the tests (`https`), trusting the system's
/// root certificates (read for the first request).
pub fn https_client() -> SharedHttpClient {
    https_client_trusting(Roots::System)
}

/// The same HTTPS client, trusting `roots` (the functions': [`Roots::for_function`]).
pub fn https_client_trusting(roots: Roots) -> SharedHttpClient {
    super::https::client(roots)
}

/// Loads the SDK configuration. With `endpoint_url` (the local emulator), every client talks
/// to it, the region comes from the environment or defaults, never from instance metadata,
/// and static test credentials stand in where the environment has none.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let Some(url) = endpoint_url else {
        // The loader's own region chain (environment, profile, instance metadata) runs with the
        // HTTPS client above; only when it finds nothing does the default region apply.
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(retries())
            .timeout_config(timeouts())
            .load()
            .await;
        if config.region().is_some() {
            return config;
        }
        return config
            .into_builder()
            .region(Region::new(DEFAULT_REGION))
            .build();
    };
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(region)
        .retry_config(retries())
        .timeout_config(timeouts())
        .endpoint_url(url);
    let has_env_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if !has_env_credentials {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "autoheal-local",
        ));
    }
    loader.load().await
}

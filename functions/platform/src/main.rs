//! The platform layer's Lambda function: wiring only.

use autoheal_core::Layer;
use autoheal_platform::PlatformHealer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_aws::run(Layer::Platform, PlatformHealer::new).await
}

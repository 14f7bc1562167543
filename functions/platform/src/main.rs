//! The platform layer's Lambda function: wiring only.

use autoheal_core::Layer;
use autoheal_platform::PlatformHealer;

// C's `pow` and `log`, defined in the binary: it loads no libm (functions/c-math).
use autoheal_c_math as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_aws::run(Layer::Platform, PlatformHealer::new).await
}

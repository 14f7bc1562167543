//! The application layer's Lambda function: wiring only.

use autoheal_application::ApplicationHealer;
use autoheal_core::Layer;

// C's `pow` and `log`, defined in the binary: it loads no libm (functions/c-math).
use autoheal_c_math as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // A restart sends only the stack's restart document, which the stack names.
    autoheal_aws::function::run_with_setting(
        Layer::Application,
        autoheal_aws::config::env::RESTART_DOCUMENT,
        |sdk, document| ApplicationHealer::with_restart_document(sdk, &document),
    )
    .await
}

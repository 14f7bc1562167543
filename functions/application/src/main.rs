//! The application layer's Lambda function: wiring only.

use autoheal_application::ApplicationHealer;
use autoheal_core::Layer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_aws::run(Layer::Application, ApplicationHealer::new).await
}

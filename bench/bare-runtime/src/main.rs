//! The floor `make bench` measures the functions against: `lambda_runtime` on the same
//! single-threaded tokio runtime, answering each event with the event itself. No log set-up,
//! no configuration, no AWS client: what a function's init and resident memory cost beyond
//! this is autoheal's own.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(event.payload)
    }))
    .await
}

//! The detection function: wiring only. Every event (the hourly schedule, a resource's
//! lifecycle event) runs one `alarms apply` over the whole account.

use autoheal_detection::{Clients, Settings, handle, load_rules};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

// C's `pow` and `log`, defined in the binary: it loads no libm (functions/c-math).
use autoheal_c_math as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    autoheal_aws::logging::init();
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = match load_rules(lookup).and_then(|rules| Settings::from_lookup(rules, lookup)) {
        Ok(settings) => settings,
        Err(error) => {
            // One line on stderr, as every function that cannot start.
            eprintln!("error: {error}");
            std::process::exit(1)
        }
    };
    let sdk = autoheal_aws::config::lambda_sdk_from_env();
    let clients = Clients::new(&sdk);
    let (clients, settings) = (&clients, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(clients, settings, &event.payload).await
    }))
    .await
}

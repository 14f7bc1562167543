//! An engine as CloudWatch drives it: autoheal acts only on an alarm CloudWatch holds, so every
//! alarm event a test hands to [`Sent::handle`] is made true in the emulator first (its alarm
//! put there as the event describes it, in the event's state, by the drill `autoheal invoke
//! --fire` uses). An alarm whose state the test set itself keeps that state (an event the
//! test delivers late). A dispatcher's event is made true in the CloudWatch of its own
//! account and region.
//! [`Sent::unsent`] is the engine itself, for events CloudWatch never sent.

use std::ops::Deref;

use autoheal_aws::{Dispatcher, HandlerError};
use autoheal_core::policy::resolve::select_any;
use autoheal_core::{
    AlarmEvent, AlarmKind, Clock, Engine, EngineError, FollowUps, Healer, Notifier, Outcome,
    RuleSet, StateStore,
};
use autoheal_detection::drill::{self, Firing};
use serde_json::Value;

/// An engine whose alarm events CloudWatch sent.
#[derive(Debug)]
pub struct Sent<E> {
    pub unsent: E,
    /// The fixtures' configuration (the emulator's home account and region).
    sdk: aws_config::SdkConfig,
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// One drill at a time: concurrent deliveries of one event would otherwise each create
    /// its alarm, and the emulator starts a recreated alarm over in OK.
    drills: tokio::sync::Mutex<()>,
}

impl<E> Sent<E> {
    /// `engine`, its events' alarms put into the CloudWatch of `sdk`.
    pub fn new(engine: E, sdk: &aws_config::SdkConfig) -> Self {
        Sent {
            unsent: engine,
            sdk: sdk.clone(),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            drills: tokio::sync::Mutex::new(()),
        }
    }

    /// The same, its alarms put into CloudWatch through `sdk` (straight to the emulator, when
    /// the engine's own requests go through a proxy that counts them).
    pub fn firing_through(self, sdk: &aws_config::SdkConfig) -> Self {
        Sent::new(self.unsent, sdk)
    }

    /// Makes the alarm of `payload` (if it is an alarm event) true in `cloudwatch`, as its
    /// event says. The emulator has no composite alarms: a composite event is left as it is.
    async fn fire_in(
        &self,
        rules: &RuleSet,
        cloudwatch: &aws_sdk_cloudwatch::Client,
        payload: &Value,
    ) {
        let Ok(event) = AlarmEvent::from_value(payload.clone()) else {
            return;
        };
        if matches!(event.kind, AlarmKind::Composite { .. }) {
            return;
        }
        let rule = select_any(rules, &event).1.rule();
        let _one_at_a_time = self.drills.lock().await;
        // Boxed, as the engine's own steps are: unoptimised builds lay a future out in full
        // wherever it is awaited, and the tests' threads have small stacks.
        Box::pin(drill::fire(
            cloudwatch,
            &event,
            rule,
            Firing::UnlessSetByOthers,
        ))
        .await
        .unwrap_or_else(|e| panic!("the event's alarm put into the emulator: {e}"));
    }
}

impl<E> Deref for Sent<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.unsent
    }
}

impl<S: StateStore, N: Notifier, H: Healer, C: Clock, F: FollowUps> Sent<Engine<S, N, H, C, F>> {
    /// Handles `payload` as its layer's function would, after making its alarm (if it is an
    /// alarm event) true in CloudWatch.
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, EngineError> {
        self.fire(&payload).await;
        Box::pin(self.unsent.handle(payload, run_id)).await
    }

    /// Makes the alarm of `payload` (if it is an alarm event) true in CloudWatch, as its
    /// event says.
    pub async fn fire(&self, payload: &Value) {
        self.fire_in(&self.unsent.rules, &self.cloudwatch, payload)
            .await;
    }
}

impl<H, C, M> Sent<Dispatcher<H, C, M>>
where
    H: Healer,
    C: Clock + Clone,
    M: Fn(&aws_config::SdkConfig) -> H,
{
    /// Handles `payload` as the layer's function does, after making its alarm (if it is an
    /// alarm event) true in the CloudWatch of the event's own account and region.
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, HandlerError> {
        self.fire(&payload).await;
        Box::pin(self.unsent.handle(payload, run_id)).await
    }

    /// Makes the alarm of `payload` (if it is an alarm event) true in the CloudWatch of its
    /// account and region (the fixtures' own credentials, in a member account through STS).
    pub async fn fire(&self, payload: &Value) {
        let named = |field: &str| payload.get(field).and_then(Value::as_str);
        let cloudwatch = match (named("account"), named("region")) {
            (Some(account), Some(region)) => aws_sdk_cloudwatch::Client::new(
                &crate::accounts::sdk_in(&self.sdk, account, region).await,
            ),
            _ => self.cloudwatch.clone(),
        };
        self.fire_in(&self.unsent.home().rules, &cloudwatch, payload)
            .await;
    }
}

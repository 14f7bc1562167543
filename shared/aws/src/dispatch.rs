//! One function, many places: the event's account and region choose the engine that handles
//! it. At home (the function's own account and region) the function's own engine; in a member
//! account (in the stack's region or another it serves), an engine of that place, built on
//! first use and kept, whose healer and alarm reads use the member role's credentials in that
//! region, while the state, the notifications and the follow-up schedules stay home.
//!
//! A member account whose role cannot be assumed fails its own event, with an error that says
//! which role, which account and what to check; nothing of it holds up another account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::SdkConfig;
use serde_json::Value;

use autoheal_core::{Clock, Engine, Healer, Outcome, Place, Settings};

use crate::config::FunctionConfig;
use crate::followups::AwsFollowUps;
use crate::function::{HandlerError, build_engine_in};
use crate::members::{MemberAccess, MemberRole, MemberRoleError, partition_of_arn};
use crate::notify::SnsNotifier;
use crate::state::DynamoStateStore;

/// A layer's engine with the AWS adapters, acting in one place.
pub type PlaceEngine<H, C> = Engine<DynamoStateStore, SnsNotifier, H, C, AwsFollowUps>;

/// Hands each event to the engine of its place.
#[derive(Debug)]
pub struct Dispatcher<H, C, M> {
    home: PlaceEngine<H, C>,
    config: FunctionConfig,
    sdk: SdkConfig,
    /// The member accounts' role (`None`: the function heals in its own account only).
    access: Option<MemberAccess>,
    make_healer: M,
    clock: C,
    elsewhere: Mutex<HashMap<Place, Arc<PlaceEngine<H, C>>>>,
}

impl<H, C, M> Dispatcher<H, C, M>
where
    H: Healer,
    C: Clock + Clone,
    M: Fn(&SdkConfig) -> H,
{
    /// The dispatcher of a layer's function: `sdk` is the function's own configuration (its
    /// account, region and credentials), `make_healer` builds the layer's healer from the
    /// configuration of the place it acts in. The member role is assumed through STS with
    /// the function's own credentials.
    pub fn new(config: FunctionConfig, sdk: &SdkConfig, make_healer: M, clock: C) -> Self {
        let access = Self::member_access(&config, sdk);
        Self::with_access(config, sdk, make_healer, clock, access)
    }

    /// [`Self::new`] with the member accounts reached through `access` (`None`: none).
    pub fn with_access(
        config: FunctionConfig,
        sdk: &SdkConfig,
        make_healer: M,
        clock: C,
        access: Option<MemberAccess>,
    ) -> Self {
        let home = build_engine_in(config.clone(), sdk, sdk, make_healer(sdk), clock.clone());
        Dispatcher {
            home,
            config,
            sdk: sdk.clone(),
            access,
            make_healer,
            clock,
            elsewhere: Mutex::new(HashMap::new()),
        }
    }

    /// The member role's access from the function's home, when it heals in member accounts:
    /// the role of the configured name, in the partition of the function's own ARN.
    pub fn member_access(config: &FunctionConfig, sdk: &SdkConfig) -> Option<MemberAccess> {
        let home = config.settings.reach.home.as_ref()?;
        let name = config.member_role.clone()?;
        let partition = partition_of_arn(&config.follow_ups.function_arn)
            .unwrap_or("aws")
            .to_owned();
        Some(MemberAccess::from_sdk(
            sdk,
            &home.account,
            MemberRole { partition, name },
        ))
    }

    /// The engine of the function's own account and region.
    pub fn home(&self) -> &PlaceEngine<H, C> {
        &self.home
    }

    /// The deployment's settings (where it heals among them).
    pub fn settings(&self) -> &Settings {
        &self.home.settings
    }

    /// The member role's access, when the function heals in member accounts.
    pub fn access(&self) -> Option<&MemberAccess> {
        self.access.as_ref()
    }

    /// The engine of `place`, built with that place's clients the first time.
    pub fn engine_in(&self, place: &Place) -> Arc<PlaceEngine<H, C>> {
        let mut engines = self
            .elsewhere
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = engines.get(place) {
            return Arc::clone(engine);
        }
        let sdk = self.sdk_in(place);
        let engine = Arc::new(build_engine_in(
            self.config.clone(),
            &self.sdk,
            &sdk,
            (self.make_healer)(&sdk),
            self.clock.clone(),
        ));
        engines.insert(place.clone(), Arc::clone(&engine));
        engine
    }

    /// The SDK configuration of `place`, a member account's: the member role's credentials,
    /// in that place's region (without member access, only the region changes: a function
    /// with no member role never routes an event to a member account).
    fn sdk_in(&self, place: &Place) -> SdkConfig {
        match &self.access {
            Some(access) => access.sdk_for(&place.account, &place.region),
            None => {
                let mut builder = self.sdk.to_builder();
                builder.set_region(Some(aws_config::Region::new(place.region.clone())));
                builder.build()
            }
        }
    }

    /// Handles one event delivered to the function: at home, or in the place it names (a
    /// member account's event once the member role's credentials are in hand, acting under
    /// that role session).
    pub async fn handle(&self, payload: Value, run_id: &str) -> Result<Outcome, HandlerError> {
        let Some(place) = self.settings().reach.route(&payload) else {
            return Ok(Box::pin(self.home.handle_acting_as(payload, run_id, None)).await?);
        };
        // Elsewhere is always a member account: the stack's own account is healed in its own
        // region only. Boxed, as the engine's steps are: the STS call's future is deep, and
        // unboxed it is laid out in full in every future that awaits this one.
        let session = Box::pin(self.member_credentials(&place, run_id)).await?;
        let engine = self.engine_in(&place);
        Ok(Box::pin(engine.handle_acting_as(payload, run_id, Some(&session))).await?)
    }

    /// The member role's session in `place`'s account for the run `run_id`.
    async fn member_credentials(
        &self,
        place: &Place,
        run_id: &str,
    ) -> Result<String, MemberRoleError> {
        let Some(access) = &self.access else {
            // Unreachable as configured (member accounts need the role's name), but never
            // acted on with the function's own credentials.
            return Err(MemberRoleError {
                role_arn: String::new(),
                account: place.account.clone(),
                role_name: String::new(),
                cause: "no member role is configured (AUTOHEAL_MEMBER_ROLE_NAME)".to_owned(),
            });
        };
        let assumed = access
            .credentials_for(&place.account, run_id)
            .await
            .inspect_err(|error| {
                tracing::error!(
                    account = %place.account,
                    region = %place.region,
                    %error,
                    "the member role was not assumed: nothing done for this event"
                );
            })?;
        tracing::info!(
            account = %place.account,
            region = %place.region,
            session = %assumed.session,
            "acting in a member account"
        );
        Ok(assumed.session)
    }
}

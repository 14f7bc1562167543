//! An organization on the emulator: the central account (the emulator's default, where the
//! deployment's table, topic and schedules are), two member accounts and an account outside
//! it, and a second region. The emulator keeps each account's resources apart, and acts in an
//! account for the credentials of a role assumed there through STS (the role need not exist);
//! it keeps each region's apart too.

use std::collections::BTreeSet;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};

use autoheal_aws::Dispatcher;
use autoheal_core::{Clock, Layer, MemberAccounts, Place, Reach, Settings};
use autoheal_layers::LayerHealer;

use crate::cfn::{ACCOUNT, REGION};
use crate::{Counting, Deployment, sent};

/// The central account: the deployment's own.
pub const HOME: &str = ACCOUNT;
/// The member accounts the deployment heals in.
pub const MEMBER_B: &str = "111111111111";
pub const MEMBER_C: &str = "222222222222";
/// An account it does not heal in.
pub const STRANGER: &str = "333333333333";
/// The second region it heals in.
pub const OTHER_REGION: &str = "eu-west-1";
/// The member role's name (the template's default MemberRoleName).
pub const MEMBER_ROLE: &str = "autoheal-member";

/// `place` of the tests' organization.
pub fn place(account: &str, region: &str) -> Place {
    Place::new(account, region)
}

/// Where the tests' deployment heals: home, the member accounts B and C, and the second region
/// besides its own.
pub fn organization() -> Reach {
    Reach {
        home: Some(place(HOME, REGION)),
        members: MemberAccounts::Listed(BTreeSet::from([MEMBER_B.to_owned(), MEMBER_C.to_owned()])),
        regions: BTreeSet::from([OTHER_REGION.to_owned()]),
    }
}

/// The fixtures' configuration in `account` and `region`: `base` (the emulator's default
/// account) in that region, and in another account the credentials of a role assumed there.
/// The fixtures' own role, not the member role: what the tests set up and read back is not
/// the functions' doing.
pub async fn sdk_in(base: &SdkConfig, account: &str, region: &str) -> SdkConfig {
    let mut builder = base.to_builder();
    builder.set_region(Some(Region::new(region.to_owned())));
    if account == HOME {
        return builder.build();
    }
    let answer = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/fixtures"))
        .role_session_name("fixtures")
        .send()
        .await
        .unwrap_or_else(|e| panic!("the fixtures' role in {account}: {e:?}"));
    let given = answer.credentials().expect("credentials");
    builder.set_credentials_provider(Some(SharedCredentialsProvider::new(Credentials::new(
        given.access_key_id(),
        given.secret_access_key(),
        Some(given.session_token().to_owned()),
        None,
        "fixtures",
    ))));
    builder.build()
}

/// `event` as CloudWatch in `account` and `region` sends it: its account, region and alarm
/// ARN there.
pub fn placed(mut event: Value, account: &str, region: &str) -> Value {
    let name = event["detail"]["alarmName"]
        .as_str()
        .expect("an alarm name")
        .to_owned();
    event["account"] = json!(account);
    event["region"] = json!(region);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
    )]);
    event
}

/// Builds the layer's counting healer from a place's configuration.
pub type HealerMaker = Box<dyn Fn(&SdkConfig) -> Counting<LayerHealer> + Send + Sync>;

/// A layer's function as its Lambda wires it, with counting real healers; its alarm events are
/// sent by the CloudWatch of their own account and region.
pub type TestDispatcher<C> = sent::Sent<Dispatcher<Counting<LayerHealer>, C, HealerMaker>>;

impl Deployment {
    /// `layer`'s function as `autoheal_aws::run` wires it (its dispatcher), signed as that
    /// function, healing where `settings.reach` says, through the member role
    /// [`MEMBER_ROLE`] in member accounts.
    pub fn dispatcher<C: Clock + Clone>(
        &self,
        layer: Layer,
        clock: C,
        settings: Settings,
    ) -> TestDispatcher<C> {
        let member_role =
            (settings.reach.members != MemberAccounts::None).then(|| MEMBER_ROLE.to_owned());
        let config = autoheal_aws::FunctionConfig {
            member_role,
            ..self.function_config(layer, settings)
        };
        let make_healer: HealerMaker =
            Box::new(move |sdk: &SdkConfig| Counting::new(LayerHealer::new(layer, sdk)));
        let dispatcher = Dispatcher::new(config, &self.function_sdk(layer), make_healer, clock);
        sent::Sent::new(dispatcher, &self.sdk)
    }
}

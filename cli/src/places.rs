//! `--account` and `--region`: which account's and region's runs to read, which resource to
//! reset, which account to survey. A deployment that heals an organization keeps every
//! account's state in its own table; the command line runs with the credentials of the
//! account it names, or of the central account.

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_aws::members::partition_of_arn;
use autoheal_core::model::place::is_account_id;
use autoheal_core::{HealingRecord, MemberAccounts, Place, Reach};

use crate::Failure;

/// Where: an account and a region, each optional.
#[derive(Debug, Clone, clap::Args)]
pub struct PlaceArgs {
    /// In this account (12 digits).
    #[arg(long, value_parser = parse_account)]
    pub account: Option<String>,
    /// In this region (e.g. `eu-west-1`).
    #[arg(long, value_parser = parse_region)]
    pub region: Option<String>,
}

impl PlaceArgs {
    /// Whether `record` is of this place. Runs recorded before records named their account
    /// match no account.
    pub fn admits(&self, record: &HealingRecord) -> bool {
        let matches = |wanted: &Option<String>, recorded: &Option<String>| {
            wanted.is_none() || wanted == recorded
        };
        matches(&self.account, &record.account) && matches(&self.region, &record.region)
    }

    fn is_set(&self) -> bool {
        self.account.is_some() || self.region.is_some()
    }

    /// The place named, the rest from `home`; `None` when nothing is named.
    fn within(&self, home: &Place) -> Option<Place> {
        self.is_set().then(|| {
            Place::new(
                self.account.as_deref().unwrap_or(&home.account),
                self.region.as_deref().unwrap_or(&home.region),
            )
        })
    }

    /// Where the deployment is (the credentials' account, the configuration's region) and
    /// the place named within it, when one is: the deployment heals there as in any member
    /// account or region (a reset of its resource changes the central table only).
    pub async fn reach(&self, sdk: &SdkConfig) -> Result<(Reach, Option<Place>), Failure> {
        if !self.is_set() {
            return Ok((Reach::default(), None));
        }
        let (account, _) = caller(sdk).await?;
        let home = Place::new(account, region_of(sdk)?);
        let place = self.within(&home);
        let reach = Reach {
            regions: place.iter().map(|place| place.region.clone()).collect(),
            home: Some(home),
            members: MemberAccounts::Organization,
        };
        Ok((reach, place))
    }

    /// The SDK configuration of the account and region named, from `sdk`'s: another region's
    /// clients; another account's through `role_name` assumed there (a role the caller may
    /// assume, e.g. a read-only audit role), or `sdk` itself when its credentials are already
    /// that account's.
    pub async fn sdk(
        &self,
        sdk: &SdkConfig,
        role_name: Option<&str>,
    ) -> Result<SdkConfig, Failure> {
        if !self.is_set() {
            return Ok(sdk.clone());
        }
        let region = match &self.region {
            Some(region) => region.clone(),
            None => region_of(sdk)?,
        };
        let (caller_account, caller_arn) = caller(sdk).await?;
        let account = self.account.clone().unwrap_or(caller_account.clone());
        if account != caller_account && role_name.is_none() {
            return Err(Failure(format!(
                "the credentials are in account {caller_account}, not {account}: pass \
                 --role-name, a role you may assume in {account} (a read-only audit role, say), \
                 or run with credentials of {account}"
            )));
        }
        let mut builder = sdk.to_builder();
        builder.set_region(Some(Region::new(region)));
        if let Some(name) = role_name.filter(|_| account != caller_account) {
            let partition = partition_of_arn(&caller_arn).unwrap_or("aws");
            let role = format!("arn:{partition}:iam::{account}:role/{name}");
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(
                assume(sdk, &role).await?,
            )));
        }
        Ok(builder.build())
    }
}

/// The credentials of `role`, assumed for this command in a session named after it
/// (`coverage-<process id>`: the functions' sessions, `autoheal-…`, are theirs alone).
async fn assume(sdk: &SdkConfig, role: &str) -> Result<Credentials, Failure> {
    let answer = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(role)
        .role_session_name(format!("coverage-{}", std::process::id()))
        .send()
        .await
        .map_err(|error| {
            Failure(format!(
                "cannot assume {role} (is it a role you may assume there?): AssumeRole: {}",
                DisplayErrorContext(&error)
            ))
        })?;
    let given = answer
        .credentials()
        .ok_or_else(|| Failure(format!("AssumeRole of {role} answered without credentials")))?;
    Ok(Credentials::new(
        given.access_key_id(),
        given.secret_access_key(),
        Some(given.session_token().to_owned()),
        std::time::SystemTime::try_from(*given.expiration()).ok(),
        "autoheal-coverage",
    ))
}

/// The account and ARN the credentials of `sdk` are in.
async fn caller(sdk: &SdkConfig) -> Result<(String, String), Failure> {
    let identity = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| {
            Failure(format!(
                "GetCallerIdentity: {}",
                DisplayErrorContext(&error)
            ))
        })?;
    match (identity.account(), identity.arn()) {
        (Some(account), Some(arn)) => Ok((account.to_owned(), arn.to_owned())),
        _ => Err(Failure(
            "GetCallerIdentity answered without an account".to_owned(),
        )),
    }
}

fn region_of(sdk: &SdkConfig) -> Result<String, Failure> {
    sdk.region()
        .map(|region| region.as_ref().to_owned())
        .ok_or_else(|| {
            Failure("no region is configured: set AWS_REGION or pass --region".to_owned())
        })
}

fn parse_account(value: &str) -> Result<String, String> {
    if is_account_id(value) {
        Ok(value.to_owned())
    } else {
        Err("an account id is 12 digits".to_owned())
    }
}

fn parse_region(value: &str) -> Result<String, String> {
    let well_formed = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if well_formed {
        Ok(value.to_owned())
    } else {
        Err("a region is lower-case letters, digits and hyphens (e.g. `eu-west-1`)".to_owned())
    }
}

//! Creates the state table and the topic with the definitions `template.yaml` uses, for local
//! runs against the emulator (and for accounts provisioned without CloudFormation).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ScalarAttributeType, SseSpecification, TimeToLiveSpecification,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::state::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};

/// A bootstrap step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct BootstrapError {
    pub step: &'static str,
    pub message: String,
}

fn failed(step: &'static str, message: impl ToString) -> BootstrapError {
    BootstrapError {
        step,
        message: message.to_string(),
    }
}

/// What `bootstrap` created or found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bootstrapped {
    pub table_name: String,
    pub table_created: bool,
    pub topic_arn: String,
}

/// Creates (or finds) the state table: on-demand, TTL on `expires_at`, point-in-time recovery,
/// server-side encryption. Idempotent.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
) -> Result<bool, BootstrapError> {
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| failed("CreateTable", e))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| failed("CreateTable", e))
    };
    let created = match client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .sse_specification(SseSpecification::builder().enabled(true).build())
        .send()
        .await
    {
        Ok(_) => true,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            false
        }
        Err(error) => return Err(failed("CreateTable", DisplayErrorContext(&error))),
    };
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| failed("UpdateTimeToLive", e))?,
        )
        .send()
        .await
        .map(|_| ())
        .or_else(|error| {
            // Enabling TTL twice is refused with "already enabled": that is the goal state.
            let text = DisplayErrorContext(&error).to_string();
            if text.contains("already enabled") {
                Ok(())
            } else {
                Err(failed("UpdateTimeToLive", text))
            }
        })?;
    client
        .update_continuous_backups()
        .table_name(table_name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| failed("UpdateContinuousBackups", e))?,
        )
        .send()
        .await
        .map_err(|e| failed("UpdateContinuousBackups", DisplayErrorContext(&e)))?;
    Ok(created)
}

/// Creates (or finds: `CreateTopic` is idempotent) the notification topic; returns its ARN.
pub async fn ensure_topic(
    client: &aws_sdk_sns::Client,
    topic_name: &str,
) -> Result<String, BootstrapError> {
    let output = client
        .create_topic()
        .name(topic_name)
        .send()
        .await
        .map_err(|e| failed("CreateTopic", DisplayErrorContext(&e)))?;
    output
        .topic_arn
        .ok_or_else(|| failed("CreateTopic", "no topic ARN in the reply"))
}

/// Creates the table and the topic.
pub async fn bootstrap(
    sdk: &aws_config::SdkConfig,
    table_name: &str,
    topic_name: &str,
) -> Result<Bootstrapped, BootstrapError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let table_created = ensure_table(&dynamodb, table_name).await?;
    let topic_arn = ensure_topic(&sns, topic_name).await?;
    Ok(Bootstrapped {
        table_name: table_name.to_owned(),
        table_created,
        topic_arn,
    })
}

//! The SNS notifier: a readable subject, the record as JSON, and `layer` / `status` / `rule` /
//! `phase` / `kind` / `account` / `region` message attributes for subscription filter
//! policies.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;

use autoheal_core::{Notice, Notifier, NotifyError};

/// Publishes notices to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Notifier for SnsNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notice.subject())
            .message(notice.message());
        for (name, value) in notice.attributes() {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| NotifyError {
                    message: format!("cannot build attribute `{name}`: {e}"),
                })?;
            request = request.message_attributes(name, attribute);
        }
        request.send().await.map_err(|e| NotifyError {
            message: format!("Publish: {}", DisplayErrorContext(&e)),
        })?;
        Ok(())
    }
}

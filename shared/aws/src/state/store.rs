//! The store itself: a client and a table. What it reads, writes and claims is in the
//! files beside this one.

use aws_sdk_dynamodb::Client;

/// Incident state and healing records in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

//! Fixtures of the data layer in the emulator.

use aws_config::SdkConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::sample_event;

/// The rules of the data layer and the dimension each reads its resource id from.
pub const DATABASE_CORRUPTION: &str = "database-corruption-healing";
pub const CACHE_INVALIDATION: &str = "cache-invalidation-healing";
pub const BACKUP_VERIFICATION: &str = "backup-verification-healing";

fn dimension(rule: &str) -> &'static str {
    if rule == CACHE_INVALIDATION {
        "CacheClusterId"
    } else {
        "DBInstanceIdentifier"
    }
}

fn aimed(file: &str, rule: &str, resource_id: &str, id: &str) -> Value {
    let mut event = sample_event(file);
    event["id"] = Value::from(id);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        [dimension(rule)] = Value::from(resource_id);
    event
}

/// The ALARM sample of a data rule, aimed at `resource_id`, with event id `id`.
pub fn data_alarm(rule: &str, resource_id: &str, id: &str) -> Value {
    aimed(&format!("{rule}.alarm.json"), rule, resource_id, id)
}

/// The matching OK sample.
pub fn data_ok(rule: &str, resource_id: &str, id: &str) -> Value {
    aimed(&format!("{rule}.ok.json"), rule, resource_id, id)
}

/// Sets the time EventBridge stamped on an event (the alarm's state change).
pub fn at(mut event: Value, time: DateTime<Utc>) -> Value {
    event["time"] = Value::from(time.to_rfc3339_opts(SecondsFormat::Secs, true));
    event
}

/// RDS and ElastiCache in the emulator.
#[derive(Debug, Clone)]
pub struct DataStores {
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
}

impl DataStores {
    pub fn new(sdk: &SdkConfig) -> Self {
        DataStores {
            rds: aws_sdk_rds::Client::new(sdk),
            elasticache: aws_sdk_elasticache::Client::new(sdk),
        }
    }

    /// A MySQL instance with `tags`, keeping automated backups for `backup_retention_days`.
    pub async fn database(&self, id: &str, tags: &[(&str, &str)], backup_retention_days: i32) {
        self.database_with_option_group(id, tags, backup_retention_days, None)
            .await;
    }

    /// An instance whose option group is gone, so that no snapshot of it can be restored.
    pub async fn unrestorable_database(&self, id: &str, backup_retention_days: i32) {
        let options = format!("{id}-options");
        self.option_group(&options).await;
        self.database_with_option_group(id, &[], backup_retention_days, Some(&options))
            .await;
        self.delete_option_group(&options).await;
    }

    /// Removes tag `key` from the instance `id`.
    pub async fn untag_database(&self, id: &str, key: &str) {
        let arn = self
            .instance(id)
            .await
            .and_then(|instance| instance.db_instance_arn().map(str::to_owned))
            .expect("the instance's ARN");
        self.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .tag_keys(key)
            .send()
            .await
            .expect("untag the instance");
    }

    pub async fn database_with_option_group(
        &self,
        id: &str,
        tags: &[(&str, &str)],
        backup_retention_days: i32,
        option_group: Option<&str>,
    ) {
        let mut create = self
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine("mysql")
            .engine_version("8.0.35")
            .db_instance_class("db.t3.medium")
            .master_username("admin")
            .master_user_password("correct-horse-battery")
            .allocated_storage(20)
            .backup_retention_period(backup_retention_days)
            .set_option_group_name(option_group.map(str::to_owned));
        for (key, value) in tags {
            create = create.tags(
                aws_sdk_rds::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build(),
            );
        }
        create.send().await.expect("create DB instance");
    }

    /// A MySQL option group (a restore from a snapshot needs the source's option group).
    pub async fn option_group(&self, name: &str) {
        self.rds
            .create_option_group()
            .option_group_name(name)
            .engine_name("mysql")
            .major_engine_version("8.0")
            .option_group_description("autoheal test")
            .send()
            .await
            .expect("create option group");
    }

    pub async fn delete_option_group(&self, name: &str) {
        self.rds
            .delete_option_group()
            .option_group_name(name)
            .send()
            .await
            .expect("delete option group");
    }

    /// The instance, or `None` when there is none.
    pub async fn instance(&self, id: &str) -> Option<aws_sdk_rds::types::DbInstance> {
        match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(output) => output.db_instances().first().cloned(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_not_found_fault()) =>
            {
                None
            }
            Err(e) => panic!("describe DB instance {id}: {e:?}"),
        }
    }

    /// Every DB instance identifier, sorted.
    pub async fn instance_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rds
            .describe_db_instances()
            .send()
            .await
            .expect("describe DB instances")
            .db_instances()
            .iter()
            .filter_map(|i| i.db_instance_identifier().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// Manual snapshots of `db`.
    pub async fn snapshots_of(&self, db: &str) -> Vec<aws_sdk_rds::types::DbSnapshot> {
        self.rds
            .describe_db_snapshots()
            .db_instance_identifier(db)
            .snapshot_type("manual")
            .send()
            .await
            .expect("describe DB snapshots")
            .db_snapshots()
            .to_vec()
    }

    /// A one-node Redis cluster with `tags`.
    pub async fn cache_cluster(&self, id: &str, tags: &[(&str, &str)]) {
        let mut create = self
            .elasticache
            .create_cache_cluster()
            .cache_cluster_id(id)
            .engine("redis")
            .cache_node_type("cache.t3.micro")
            .num_cache_nodes(1);
        for (key, value) in tags {
            create = create.tags(
                aws_sdk_elasticache::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build(),
            );
        }
        create.send().await.expect("create cache cluster");
    }
}

/// A tag's value on an RDS resource's tag list.
pub fn rds_tag<'a>(tags: &'a [aws_sdk_rds::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

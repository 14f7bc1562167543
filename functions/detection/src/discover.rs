//! What each rule protects: the resources of its kind (through `listing`), or for an
//! application metric the series CloudWatch holds (`ListMetrics`), each resource listed once
//! per run however many rules need it.

use std::collections::BTreeMap;

use autoheal_core::policy::detection::target::{Found, PublishedMetric, Resource};
use autoheal_core::{Action, ResourceKind, RuleSet};
use aws_sdk_cloudwatch::types::DimensionFilter;

use crate::Clients;
use crate::error::{DetectionError, describe};
use crate::listing::{Own, list};

/// Everything the enabled rules with an alarm protect, before the scope is applied.
pub async fn discover(
    clients: &Clients,
    rules: &RuleSet,
    own: &Own,
) -> Result<Vec<Found>, DetectionError> {
    let mut listed: BTreeMap<(ResourceKind, Option<String>), Vec<Resource>> = BTreeMap::new();
    let mut found = Vec::new();
    for rule in rules.rules().iter().filter(|rule| rule.enabled) {
        let Some(spec) = &rule.alarm else {
            continue;
        };
        let kind = rule.action.resource_kind();
        let alias = match &rule.action {
            Action::RollbackLambdaAlias { alias } => Some(alias.clone()),
            _ => None,
        };
        let key = (kind, alias.clone());
        if !listed.contains_key(&key) {
            // Boxed: the futures of every listing together are too deep to lay out inline.
            let resources = Box::pin(list(clients, kind, alias.as_deref(), own)).await?;
            listed.insert(key.clone(), resources);
        }
        let resources = listed.get(&key).map(Vec::as_slice).unwrap_or_default();
        if !spec.application_metric {
            found.extend(resources.iter().map(|resource| Found {
                rule: rule.name.clone(),
                resource: resource.clone(),
                metric: None,
            }));
            continue;
        }
        let Some(dimension) = rule.resource.dimension.clone() else {
            continue;
        };
        for metric in
            published(clients, spec.namespace.as_deref(), &spec.metric, &dimension).await?
        {
            let Some(id) = metric.dimensions.get(&dimension).cloned() else {
                continue;
            };
            let resource = if kind == ResourceKind::ApplicationService {
                Some(Resource {
                    kind,
                    id,
                    dimensions: BTreeMap::new(),
                    tags: BTreeMap::new(),
                    own: false,
                })
            } else {
                // A metric of an instance or database that is gone: no alarm.
                resources.iter().find(|resource| resource.id == id).cloned()
            };
            if let Some(resource) = resource {
                found.push(Found {
                    rule: rule.name.clone(),
                    resource,
                    metric: Some(metric),
                });
            }
        }
    }
    Ok(found)
}

/// The series of `metric` that carry `dimension`, in `namespace` or any (paged).
async fn published(
    clients: &Clients,
    namespace: Option<&str>,
    metric: &str,
    dimension: &str,
) -> Result<Vec<PublishedMetric>, DetectionError> {
    let mut found = Vec::new();
    let mut pages = clients
        .cloudwatch
        .list_metrics()
        .set_namespace(namespace.map(str::to_owned))
        .metric_name(metric)
        .dimensions(DimensionFilter::builder().name(dimension).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DetectionError::Listing {
            what: "metrics",
            message: describe(&e),
        })?;
        for listed in page.metrics() {
            let (Some(namespace), Some(name)) = (listed.namespace(), listed.metric_name()) else {
                continue;
            };
            // AWS's own namespaces publish AWS's metrics, not the application's.
            if namespace.starts_with("AWS/") {
                continue;
            }
            found.push(PublishedMetric {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                dimensions: listed
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                    .collect(),
            });
        }
    }
    Ok(found)
}

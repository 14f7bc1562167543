//! The resources each rule protects: those the adapters found, in the deployment's scope.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::resource_id::ResourceKind;
use crate::model::rules::RuleSet;

/// The tag by which a resource opts in when the scope is `tagged`.
pub const PROTECT_TAG: &str = "autoheal:protect";
/// The tag by which a resource opts out, whatever the scope.
pub const DISABLED_TAG: &str = "autoheal:disabled";

/// Which resources autoheal creates alarms for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Those tagged `autoheal:protect=true` (the default: nothing is alarmed unasked).
    #[default]
    Tagged,
    /// Every resource of a rule's kind.
    All,
    /// None: detection is off, and autoheal's alarms are deleted.
    Off,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tagged => "tagged",
            Scope::All => "all",
            Scope::Off => "off",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "tagged" => Ok(Scope::Tagged),
            "all" => Ok(Scope::All),
            "off" => Ok(Scope::Off),
            other => Err(format!("`{other}` is not a scope: tagged, all or off")),
        }
    }
}

/// A resource a detection adapter found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: ResourceKind,
    /// Its id, as the rule's resource selector reads it from an alarm.
    pub id: String,
    /// The metric dimensions it is published under (e.g. `InstanceId`; `TargetGroup` and
    /// `LoadBalancer`).
    pub dimensions: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// One of autoheal's own resources (its stack's, or tagged `autoheal:managed`): never
    /// protected, so that autoheal never heals itself.
    pub own: bool,
}

/// A metric an application publishes (CloudWatch `ListMetrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedMetric {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// What a detection adapter found for one rule: a resource of the rule's kind, and for an
/// application metric the series it publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub rule: String,
    pub resource: Resource,
    pub metric: Option<PublishedMetric>,
}

/// A resource a rule protects: the alarm it needs watches this metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub rule: String,
    pub resource: String,
    pub namespace: String,
    pub dimensions: BTreeMap<String, String>,
}

/// Whether a resource is in the scope: never one of autoheal's own or one tagged
/// `autoheal:disabled=true`; with `tagged`, only one tagged `autoheal:protect=true`, or an
/// application's service (it has no tags: publishing the rule's metric is its opt-in).
pub fn in_scope(scope: Scope, resource: &Resource) -> bool {
    let tagged = |key: &str| {
        resource
            .tags
            .get(key)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    };
    if resource.own || tagged(DISABLED_TAG) {
        return false;
    }
    match scope {
        Scope::Off => false,
        Scope::All => true,
        Scope::Tagged => tagged(PROTECT_TAG) || resource.kind == ResourceKind::ApplicationService,
    }
}

/// The targets of what was found, in the scope: one per rule, resource and published series,
/// each once, sorted by rule and resource. A rule that is disabled or has no alarm has none.
pub fn targets(rules: &RuleSet, found: &[Found], scope: Scope) -> Vec<Target> {
    let alarm_of = |name: &str| {
        let rule = rules.get(name).filter(|rule| rule.enabled)?;
        let alarm = rule.alarm.as_ref()?;
        Some((alarm.namespace.clone(), rule.alarm_dimensions()?))
    };
    let mut targets = Vec::new();
    for item in found {
        if !in_scope(scope, &item.resource) {
            continue;
        }
        let Some((namespace, names)) = alarm_of(&item.rule) else {
            continue;
        };
        let target = match &item.metric {
            Some(metric) => {
                if !names
                    .iter()
                    .all(|name| metric.dimensions.contains_key(name))
                {
                    continue;
                }
                Target {
                    rule: item.rule.clone(),
                    resource: item.resource.id.clone(),
                    namespace: metric.namespace.clone(),
                    dimensions: metric.dimensions.clone(),
                }
            }
            None => {
                let Some(namespace) = namespace else {
                    continue;
                };
                let dimensions: Option<BTreeMap<String, String>> = names
                    .iter()
                    .map(|name| {
                        item.resource
                            .dimensions
                            .get(name)
                            .map(|value| (name.clone(), value.clone()))
                    })
                    .collect();
                let Some(dimensions) = dimensions else {
                    continue;
                };
                Target {
                    rule: item.rule.clone(),
                    resource: item.resource.id.clone(),
                    namespace,
                    dimensions,
                }
            }
        };
        targets.push(target);
    }
    targets.sort_by(|a, b| {
        (&a.rule, &a.resource, &a.dimensions).cmp(&(&b.rule, &b.resource, &b.dimensions))
    });
    targets.dedup();
    targets
}

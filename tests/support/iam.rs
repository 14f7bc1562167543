//! IAM's evaluation of identity-based policy statements, for one request: the action, the
//! resource and the request context (the condition keys and their values).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cfn::{REGION, as_list};

/// Glob match of IAM: `*` any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One request as IAM sees it: the action, the resource and the request context.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

pub fn request(action: &str, resource: &str) -> Request {
    Request {
        action: action.to_owned(),
        resource: resource.to_owned(),
        context: BTreeMap::new(),
    }
}

impl Request {
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
        self
    }

    /// A tag the resource carries, under every key name AWS offers for it.
    pub fn resource_tag(self, key: &str, value: &str) -> Self {
        let service = self.action.split(':').next().unwrap_or_default().to_owned();
        let mut this = self
            .with(&format!("aws:ResourceTag/{key}"), value)
            .with(&format!("{service}:ResourceTag/{key}"), value);
        if service == "rds" {
            this = this
                .with(&format!("rds:db-tag/{key}"), value)
                .with(&format!("rds:snapshot-tag/{key}"), value);
        }
        this
    }

    /// A tag the request sets.
    pub fn request_tag(self, key: &str, value: &str) -> Self {
        self.with(&format!("aws:RequestTag/{key}"), value)
            .with("aws:TagKeys", key)
    }

    pub fn via(self, service: &str) -> Self {
        self.with(
            "kms:ViaService",
            &format!("{service}.{REGION}.amazonaws.com"),
        )
    }
}

/// Whether one condition entry holds for the request (IAM's rules for absent keys and for
/// the ForAllValues / ForAnyValue set operators).
pub fn condition_holds(operator: &str, key: &str, expected: &[String], request: &Request) -> bool {
    let actual = request
        .context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.clone());
    let (set, operator) = match operator.split_once(':') {
        Some((set, rest)) => (Some(set), rest),
        None => (None, operator),
    };
    let (operator, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    if operator == "Null" {
        let absent = actual.is_none();
        return expected.iter().all(|e| (e == "true") == absent);
    }
    let negated = operator.contains("Not");
    let positive = operator.replace("Not", "");
    let matches = |value: &str| {
        expected.iter().any(|e| match positive.as_str() {
            "StringEquals" | "Bool" | "ArnEquals" => value == e,
            "StringEqualsIgnoreCase" => value.eq_ignore_ascii_case(e),
            "StringLike" | "ArnLike" => glob(e, value),
            other => panic!("condition operator {other} not modelled"),
        })
    };
    match (set, actual) {
        (Some("ForAllValues"), None) => true,
        (Some("ForAnyValue"), None) => false,
        (_, None) => if_exists || negated,
        (Some("ForAllValues"), Some(values)) => values.iter().all(|v| matches(v) != negated),
        (Some("ForAnyValue"), Some(values)) => values.iter().any(|v| matches(v) != negated),
        (_, Some(values)) => {
            let any = values.iter().any(|v| matches(v));
            if negated { !any } else { any }
        }
    }
}

pub fn statement_applies(statement: &Value, request: &Request) -> bool {
    let strings = |v: &Value| -> Vec<String> {
        as_list(v)
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect()
    };
    let action = strings(&statement["Action"])
        .iter()
        .any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()));
    let resource = strings(&statement["Resource"])
        .iter()
        .any(|r| glob(r, &request.resource));
    let conditions = statement["Condition"].as_object().is_none_or(|operators| {
        operators.iter().all(|(operator, entries)| {
            entries
                .as_object()
                .expect("condition entries")
                .iter()
                .all(|(key, values)| condition_holds(operator, key, &strings(values), request))
        })
    });
    action && resource && conditions
}

/// IAM's verdict: some Allow applies and no Deny does.
pub fn allowed(statements: &[Value], request: &Request) -> bool {
    let applying = |effect: &str| {
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .any(|s| statement_applies(s, request))
    };
    applying("Allow") && !applying("Deny")
}

fn sid(statement: &Value) -> String {
    statement["Sid"].as_str().unwrap_or("(no Sid)").to_owned()
}

/// Why IAM denies `request`: the Deny that applies, or for each Allow naming the action,
/// what of it does not hold (its resources, or a condition and the request's values); or
/// that no statement names the action.
pub fn why_denied(statements: &[Value], request: &Request) -> String {
    let strings = |v: &Value| -> Vec<String> {
        as_list(v)
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect()
    };
    if let Some(deny) = statements
        .iter()
        .find(|s| s["Effect"] == "Deny" && statement_applies(s, request))
    {
        return format!("statement {} denies it", sid(deny));
    }
    let mut reasons = Vec::new();
    for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let names_action = strings(&statement["Action"])
            .iter()
            .any(|a| glob(&a.to_lowercase(), &request.action.to_lowercase()));
        if !names_action {
            continue;
        }
        let resources = strings(&statement["Resource"]);
        if !resources.iter().any(|r| glob(r, &request.resource)) {
            reasons.push(format!(
                "{} is on other resources ({})",
                sid(statement),
                resources.join(", ")
            ));
            continue;
        }
        for (operator, entries) in statement["Condition"].as_object().into_iter().flatten() {
            for (key, values) in entries.as_object().into_iter().flatten() {
                if !condition_holds(operator, key, &strings(values), request) {
                    let actual = request
                        .context
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map_or_else(|| "absent".to_owned(), |(_, v)| format!("{v:?}"));
                    reasons.push(format!(
                        "{}'s condition {operator} {key} {} fails (the request's: {actual})",
                        sid(statement),
                        values
                    ));
                }
            }
        }
    }
    if reasons.is_empty() {
        format!("no statement allows {}", request.action)
    } else {
        reasons.join("; ")
    }
}

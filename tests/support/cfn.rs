//! `template.yaml` as deployed: its parameters, conditions and intrinsic functions filled in
//! with the values of one stack, so that its policies can be evaluated.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

pub const PARTITION: &str = "aws";
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// `template.yaml` as JSON, read once per test process.
pub fn shared_template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(crate::template)
}

pub fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// The template's functions, by logical id.
pub fn functions(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(name, resource)| (name.clone(), resource))
        .collect()
}

/// The logical id of the function whose binary is `binary` (`autoheal-infrastructure`).
pub fn function_of_binary(template: &Value, binary: &str) -> Option<String> {
    functions(template)
        .into_iter()
        .find(|(_, function)| function["Metadata"]["BuildProperties"]["Binary"] == binary)
        .map(|(name, _)| name)
}

/// The value of `node` for the given parameter values: `Ref` of a parameter, `Fn::If` on the
/// template's conditions (with `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`);
/// `None` where it is `AWS::NoValue`.
pub fn evaluate(
    template: &Value,
    node: &Value,
    parameters: &BTreeMap<&str, &str>,
) -> Option<Value> {
    let Value::Object(map) = node else {
        return Some(node.clone());
    };
    if let Some(name) = map.get("Ref").and_then(Value::as_str) {
        if name == "AWS::NoValue" {
            return None;
        }
        return Some(parameter(template, name, parameters));
    }
    if let Some(branches) = map.get("Fn::If").and_then(Value::as_array) {
        let condition = branches[0].as_str().expect("a condition name");
        let chosen = if holds(template, condition, parameters) {
            &branches[1]
        } else {
            &branches[2]
        };
        return evaluate(template, chosen, parameters);
    }
    Some(node.clone())
}

/// A parameter's value: the one given, or else its default. A stack gives its pseudo
/// parameters (`AWS::AccountId`, ...) among the values.
fn parameter(template: &Value, name: &str, parameters: &BTreeMap<&str, &str>) -> Value {
    if let Some(value) = parameters.get(name) {
        return Value::from(*value);
    }
    let declared = &template["Parameters"][name];
    assert!(declared.is_object(), "Ref {name}: not a parameter");
    declared
        .get("Default")
        .cloned()
        .unwrap_or_else(|| panic!("no value for parameter {name}"))
}

/// Whether the template's condition `name` holds for the given parameter values.
pub fn holds(template: &Value, name: &str, parameters: &BTreeMap<&str, &str>) -> bool {
    fn truth(template: &Value, node: &Value, parameters: &BTreeMap<&str, &str>) -> bool {
        let text = |v: &Value| match evaluate(template, v, parameters) {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let (op, args) = node
            .as_object()
            .and_then(|m| m.iter().next())
            .expect("a condition function");
        let args: Vec<Value> = as_list(args);
        match op.as_str() {
            "Fn::Equals" => text(&args[0]) == text(&args[1]),
            "Fn::Not" => !truth(template, &args[0], parameters),
            "Fn::And" => args.iter().all(|a| truth(template, a, parameters)),
            "Fn::Or" => args.iter().any(|a| truth(template, a, parameters)),
            "Condition" => holds(template, args[0].as_str().expect("name"), parameters),
            other => panic!("condition function {other}"),
        }
    }
    let condition = &template["Conditions"][name];
    assert!(condition.is_object(), "no condition {name}");
    truth(template, condition, parameters)
}

/// One deployment of the template: the stack's name and place, the parameter values it was
/// given, and what its resources' `Ref` and `Fn::GetAtt` stand for.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// The account it is deployed in.
    pub account: String,
    parameters: BTreeMap<String, String>,
    /// `Resource` (its `Ref`) or `Resource.Attribute` (its `Fn::GetAtt`) to its value.
    resources: BTreeMap<String, String>,
}

impl Stack {
    /// A stack named `autoheal` in `us-east-1` of account `123456789012`, with its parameters'
    /// defaults and the given resource values.
    pub fn new(resources: &[(&str, &str)]) -> Self {
        Stack {
            name: "autoheal".to_owned(),
            account: ACCOUNT.to_owned(),
            parameters: BTreeMap::new(),
            resources: resources
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The stack with a parameter set.
    pub fn with_parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The stack deployed in another account.
    pub fn in_account(mut self, account: &str) -> Self {
        self.account = account.to_owned();
        self
    }

    /// The stack with a resource's value (`Resource` or `Resource.Attribute`) set.
    pub fn with_resource(mut self, name: &str, value: &str) -> Self {
        self.resources.insert(name.to_owned(), value.to_owned());
        self
    }

    fn parameters(&self) -> BTreeMap<&str, &str> {
        let mut values: BTreeMap<&str, &str> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        values.insert("AWS::AccountId", &self.account);
        values.insert("AWS::Region", REGION);
        values.insert("AWS::Partition", PARTITION);
        values.insert("AWS::StackName", &self.name);
        values
    }

    /// Whether the template's condition `name` holds in this stack.
    pub fn holds(&self, template: &Value, name: &str) -> bool {
        holds(template, name, &self.parameters())
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Partition" => Some(PARTITION.to_owned()),
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(self.account.clone()),
            "AWS::StackName" => Some(self.name.clone()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            _ => None,
        }
    }

    /// The value of `Ref name` or `${name}`.
    fn reference(&self, template: &Value, name: &str) -> String {
        if let Some(value) = self.pseudo(name) {
            return value;
        }
        if template["Parameters"][name].is_object() {
            return match parameter(template, name, &self.parameters()) {
                Value::String(s) => s,
                other => other.to_string(),
            };
        }
        let (resource, _) = name.split_once('.').unwrap_or((name, ""));
        assert!(
            template["Resources"][resource].is_object(),
            "{name}: no parameter or resource of that name"
        );
        self.resources
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no concrete value for {name} in this stack"))
    }

    /// `node` with the template's intrinsic functions filled in; `None` where it is
    /// `AWS::NoValue` (an `Fn::If` branch that removes it).
    pub fn concrete(&self, template: &Value, node: &Value) -> Option<Value> {
        match node {
            Value::Object(map) if map.len() == 1 => {
                let (key, value) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" if value == "AWS::NoValue" => None,
                    "Ref" => Some(Value::from(
                        self.reference(template, value.as_str().expect("Ref name")),
                    )),
                    "Fn::GetAtt" => {
                        let parts = as_list(value);
                        let part =
                            |i: usize| parts[i].as_str().expect("Fn::GetAtt [resource, attribute]");
                        Some(Value::from(
                            self.reference(template, &format!("{}.{}", part(0), part(1))),
                        ))
                    }
                    "Fn::Sub" => Some(Value::from(
                        self.substitute(template, value.as_str().expect("a plain Fn::Sub string")),
                    )),
                    "Fn::If" => {
                        let branches = as_list(value);
                        let condition = branches[0].as_str().expect("a condition name");
                        let chosen = if holds(template, condition, &self.parameters()) {
                            &branches[1]
                        } else {
                            &branches[2]
                        };
                        self.concrete(template, chosen)
                    }
                    "Fn::Split" => {
                        let parts = as_list(value);
                        let separator = parts[0].as_str().expect("a separator");
                        let text = self.concrete(template, &parts[1])?;
                        let text = text.as_str().expect("Fn::Split of a string");
                        Some(Value::Array(
                            text.split(separator).map(Value::from).collect(),
                        ))
                    }
                    "Fn::Join" => {
                        let parts = as_list(value);
                        let separator = parts[0].as_str().expect("a separator").to_owned();
                        let items = self.concrete(template, &parts[1])?;
                        let texts: Vec<String> = as_list(&items)
                            .iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect();
                        Some(Value::from(texts.join(&separator)))
                    }
                    _ => Some(self.concrete_object(template, map)),
                }
            }
            Value::Object(map) => Some(self.concrete_object(template, map)),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|item| self.concrete(template, item))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn concrete_object(&self, template: &Value, map: &Map<String, Value>) -> Value {
        Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), self.concrete(template, v)?)))
                .collect(),
        )
    }

    fn substitute(&self, template: &Value, text: &str) -> String {
        let mut text = text.to_owned();
        let mut from = 0;
        while let Some(start) = text[from..].find("${").map(|at| at + from) {
            let end = start + text[start..].find('}').expect("closing brace");
            let token = text[start + 2..end].to_owned();
            let filled = self.reference(template, &token);
            text.replace_range(start..=end, &filled);
            from = start + filled.len();
        }
        text
    }

    /// Each function's statements as deployed: inline documents and the template's managed
    /// policies it references, by the function's logical id.
    pub fn function_statements(&self, template: &Value) -> BTreeMap<String, Vec<Value>> {
        let mut found = BTreeMap::new();
        for (name, function) in functions(template) {
            let mut statements = Vec::new();
            for policy in as_list(&function["Properties"]["Policies"]) {
                // A policy held under a condition (`Fn::If`), as this stack has it or not.
                let policy = match policy.get("Fn::If").map(as_list) {
                    Some(branches) => {
                        let condition = branches[0].as_str().expect("a condition name");
                        let chosen = if self.holds(template, condition) {
                            &branches[1]
                        } else {
                            &branches[2]
                        };
                        if chosen["Ref"] == "AWS::NoValue" {
                            continue;
                        }
                        chosen.clone()
                    }
                    None => policy,
                };
                if let Some(referenced) = policy.get("Ref").and_then(Value::as_str) {
                    let managed = &template["Resources"][referenced];
                    assert_eq!(
                        managed["Type"], "AWS::IAM::ManagedPolicy",
                        "{name}: {referenced}"
                    );
                    statements.extend(as_list(
                        &managed["Properties"]["PolicyDocument"]["Statement"],
                    ));
                } else if policy.get("Statement").is_some() {
                    statements.extend(as_list(&policy["Statement"]));
                } else {
                    panic!("{name}: a policy this test cannot read: {policy}");
                }
            }
            let statements = statements
                .iter()
                .filter_map(|statement| self.concrete(template, statement))
                .collect();
            found.insert(name, statements);
        }
        found
    }
}

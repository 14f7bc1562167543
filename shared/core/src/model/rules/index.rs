//! An index of a rule set's selectors, built once when the rules are loaded, so that finding
//! the rules an alarm may select costs about the same for 10 rules as for 10,000: the rules by
//! name (the `autoheal:rule` tag), a trie of alarm-name prefixes, and the metric triggers by
//! namespace and metric name.
//!
//! The index only narrows the search: what it returns is every rule that can match, as
//! positions in file order, and selection (the resolve policy) still checks each of them with
//! the rule's own trigger. A rule missing from the index would be a bug; a rule too many
//! costs one check.

use std::collections::HashMap;

use super::rule::Rule;

/// A rule's position in file order.
pub(crate) type Position = usize;

#[derive(Clone, Default)]
pub(crate) struct RuleIndex {
    /// The first rule of each name (names are unique in a valid set).
    by_name: HashMap<String, Position>,
    prefixes: PrefixTrie,
    namespaces: HashMap<String, NamespaceRules>,
}

/// The metric triggers of one namespace.
#[derive(Clone, Default)]
struct NamespaceRules {
    /// Triggers that name no metric: any metric of the namespace.
    any_metric: Vec<Position>,
    /// Triggers that name metrics, per metric name.
    by_metric: HashMap<String, Vec<Position>>,
}

impl RuleIndex {
    pub(crate) fn new(rules: &[Rule]) -> Self {
        let mut index = RuleIndex::default();
        for (position, rule) in rules.iter().enumerate() {
            index.by_name.entry(rule.name.clone()).or_insert(position);
            for prefix in &rule.trigger.alarm_name_prefixes {
                index.prefixes.insert(prefix.as_bytes(), position);
            }
            if let Some(namespace) = &rule.trigger.namespace {
                let entry = index.namespaces.entry(namespace.clone()).or_default();
                if rule.trigger.metrics.is_empty() {
                    push_once(&mut entry.any_metric, position);
                }
                for metric in &rule.trigger.metrics {
                    push_once(entry.by_metric.entry(metric.clone()).or_default(), position);
                }
            }
        }
        index
    }

    /// The first rule named `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<Position> {
        self.by_name.get(name).copied()
    }

    /// Adds the rules with an alarm-name prefix that `alarm_name` starts with (a rule with
    /// several such prefixes may be added more than once).
    pub(crate) fn by_alarm_name(&self, alarm_name: &str, found: &mut Vec<Position>) {
        self.prefixes.prefixes_of(alarm_name.as_bytes(), found);
    }

    /// Adds the rules whose trigger has this namespace and names this metric or none; the
    /// caller checks the trigger's dimensions.
    pub(crate) fn by_metric(&self, namespace: &str, metric: &str, found: &mut Vec<Position>) {
        if let Some(rules) = self.namespaces.get(namespace) {
            found.extend_from_slice(&rules.any_metric);
            if let Some(named) = rules.by_metric.get(metric) {
                found.extend_from_slice(named);
            }
        }
    }
}

impl std::fmt::Debug for RuleIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleIndex")
            .field("names", &self.by_name.len())
            .field("prefix_nodes", &self.prefixes.nodes.len())
            .field("namespaces", &self.namespaces.len())
            .finish()
    }
}

/// Positions are pushed in file order: a repeated one is the last.
fn push_once(positions: &mut Vec<Position>, position: Position) {
    if positions.last() != Some(&position) {
        positions.push(position);
    }
}

/// A radix trie of alarm-name prefixes, over bytes (as `str::starts_with` compares them).
/// Walking an alarm name down it visits every prefix the name starts with, in at most one
/// step per byte of the name, however many prefixes there are.
#[derive(Clone)]
struct PrefixTrie {
    /// The root (the empty prefix) is node 0.
    nodes: Vec<Node>,
}

#[derive(Clone, Default)]
struct Node {
    /// Edges to the children, sorted by their first byte; labels are non-empty and no two
    /// start with the same byte.
    children: Vec<(Box<[u8]>, usize)>,
    /// The rules with a prefix that ends here, in file order.
    rules: Vec<Position>,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie {
            nodes: vec![Node::default()],
        }
    }
}

impl PrefixTrie {
    fn insert(&mut self, prefix: &[u8], position: Position) {
        let mut node = 0;
        let mut rest = prefix;
        while let Some(&first) = rest.first() {
            let children = &self.nodes[node].children;
            match children.binary_search_by_key(&first, |(label, _)| label[0]) {
                Err(at) => {
                    let leaf = self.push_node();
                    self.nodes[node].children.insert(at, (rest.into(), leaf));
                    node = leaf;
                    rest = &[];
                }
                Ok(at) => {
                    let (label, child) = &children[at];
                    let child = *child;
                    let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if common == label.len() {
                        node = child;
                    } else {
                        // Split the edge where the prefix leaves it.
                        let (head, tail): (Box<[u8]>, Box<[u8]>) =
                            (label[..common].into(), label[common..].into());
                        let middle = self.push_node();
                        self.nodes[middle].children.push((tail, child));
                        self.nodes[node].children[at] = (head, middle);
                        node = middle;
                    }
                    rest = &rest[common..];
                }
            }
        }
        push_once(&mut self.nodes[node].rules, position);
    }

    fn push_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Adds the rules of every prefix `name` starts with.
    fn prefixes_of(&self, name: &[u8], found: &mut Vec<Position>) {
        let mut node = &self.nodes[0];
        let mut rest = name;
        loop {
            found.extend_from_slice(&node.rules);
            let Some(&first) = rest.first() else {
                return;
            };
            let Ok(at) = node
                .children
                .binary_search_by_key(&first, |(label, _)| label[0])
            else {
                return;
            };
            let (label, child) = &node.children[at];
            let Some(after) = rest.strip_prefix(&label[..]) else {
                return;
            };
            node = &self.nodes[*child];
            rest = after;
        }
    }
}

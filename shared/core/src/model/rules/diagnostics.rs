//! Problems with a rules file, each with the line, rule and field at fault: found after
//! parsing (validation), by serde (a wrong type, a missing or unknown field) or by the TOML
//! parser (syntax), whose positions are mapped back to the rule and key on that line.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::action::Action;
use super::raw::RawFile;

/// One thing wrong with a rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The rule's name (or its position, `rule #3`, when it has no readable name).
    pub rule: Option<String>,
    /// The field at fault, as a dotted path inside the rule (e.g. `action.type`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A rules file that cannot be used; nothing in it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct RulesError {
    pub problems: Vec<RuleProblem>,
}

fn render(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where each `[[rule]]` table starts, to give line numbers to problems found after parsing.
pub(super) struct RuleHeaders {
    lines: Vec<usize>,
}

impl RuleHeaders {
    pub(super) fn scan(text: &str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let line = line.trim();
                line.starts_with("[[rule]]") || line.starts_with("[[ rule ]]")
            })
            .map(|(index, _)| index + 1)
            .collect();
        RuleHeaders { lines }
    }

    pub(super) fn line_of(&self, rule_index: usize) -> Option<usize> {
        self.lines.get(rule_index).copied()
    }

    /// The index of the rule whose table contains `line`.
    fn rule_at(&self, line: usize) -> Option<usize> {
        self.lines.iter().rposition(|start| *start <= line)
    }
}

pub(super) fn parse_raw(text: &str, headers: &RuleHeaders) -> Result<RawFile, RulesError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|error| syntax_error(text, headers, &error))?;
    // Read straight into the types; the path of what went wrong is found from the error's
    // span only when there is an error (tracking it while reading doubled the code serde
    // generates for every table of the file).
    RawFile::deserialize(deserializer).map_err(|error| {
        let names = rule_names(text);
        let mut line = error.span().map(|span| line_at(text, span.start));
        let message = error.message().to_owned();
        let path = error
            .span()
            .map(|span| path_at(text, &span))
            .unwrap_or_default();
        let (rule_index, mut field) = match path.as_slice() {
            [Step::Key(key), Step::Index(index), rest @ ..] if key == "rule" => {
                let rest: Vec<String> = rest.iter().map(ToString::to_string).collect();
                (Some(*index), rest.join("."))
            }
            _ => (
                line.and_then(|line| headers.rule_at(line)),
                render_path(&path),
            ),
        };
        // serde reports a missing field on its parent; name the field itself.
        if let Some(missing) = backticked(&message, "missing field `") {
            field = join_field(&field, missing);
        } else if message.starts_with("unknown variant") && field.ends_with("action") {
            field = join_field(&field, "type");
        } else if let Some(unknown) = backticked(&message, "unknown field `") {
            // The path already ends with the unknown key, except inside the (internally
            // tagged) action.
            if field.rsplit('.').next() != Some(unknown) {
                field = join_field(&field, unknown);
            }
        } else if field == "action"
            && let Some(index) = rule_index
            && let Some(parameter) = wrong_action_parameter(text, index)
        {
            // The action is read as a whole (its `type` picks the parameters), so serde does
            // not say which parameter holds the wrong value: name it, and its line.
            line = parameter_line(text, headers, index, "action", &parameter).or(line);
            field = join_field(&field, &parameter);
        }
        let rule = rule_index.map(|index| match names.get(index).cloned().flatten() {
            Some(name) if !name.trim().is_empty() => name,
            _ => format!("rule #{}", index + 1),
        });
        let line = line.or_else(|| rule_index.and_then(|index| headers.line_of(index)));
        RulesError {
            problems: vec![RuleProblem {
                line,
                rule,
                field: (!field.is_empty() && field != ".").then_some(field),
                message,
            }],
        }
    })
}

/// One step of the path to a key or value of the rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(key) => f.write_str(key),
            Step::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path as `defaults.lease_seconds` or `rule[2].action`; `.` for the file itself.
fn render_path(path: &[Step]) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let mut rendered = String::new();
    for step in path {
        if !rendered.is_empty() && matches!(step, Step::Key(_)) {
            rendered.push('.');
        }
        rendered.push_str(&step.to_string());
    }
    rendered
}

/// The path to what a serde error's span points at. The TOML deserializer gives each error
/// the span of what it was reading: the key of an unknown field, a wrong value, or the table
/// (its header, inline braces or dotted key) that misses a field or holds a wrong action.
/// That key or value, found by its span (the deepest: an array of tables spans its first
/// table's header, as that table does); else the innermost value the span starts in.
fn path_at(text: &str, span: &Range<usize>) -> Vec<Step> {
    let Ok(document) = DeTable::parse(text) else {
        return Vec::new();
    };
    let mut found = Found::default();
    search_table(document.get_ref(), span, &mut Vec::new(), &mut found);
    found.exact.or(found.innermost).unwrap_or_default()
}

/// What a search has found so far; a later find is deeper, or a sibling that cannot also be.
#[derive(Default)]
struct Found {
    exact: Option<Vec<Step>>,
    innermost: Option<Vec<Step>>,
}

fn search_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Step>, found: &mut Found) {
    for (key, value) in table {
        path.push(Step::Key(key.get_ref().to_string()));
        if key.span() == *span {
            found.exact = Some(path.clone());
        }
        search_value(value, span, path, found);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
    found: &mut Found,
) {
    if value.span() == *span {
        found.exact = Some(path.clone());
    } else if value.span().contains(&span.start) {
        found.innermost = Some(path.clone());
    }
    match value.get_ref() {
        DeValue::Table(table) => search_table(table, span, path, found),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Step::Index(index));
                search_value(item, span, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Each rule's name, read leniently, so that a type error deeper in a rule can say which rule
/// it is in. Read only for an error: it parses the file a second time, which was a sixth of
/// a function's start-up when every start did it.
fn rule_names(text: &str) -> Vec<Option<String>> {
    let Ok(file) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    file.get("rule")
        .and_then(toml::Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    rule.get("name")
                        .and_then(toml::Value::as_str)
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The parameter of rule `index`'s action whose value is wrong: the one without which the
/// action reads, or lacks only that parameter.
fn wrong_action_parameter(text: &str, index: usize) -> Option<String> {
    let file = text.parse::<toml::Table>().ok()?;
    let action = file
        .get("rule")?
        .as_array()?
        .get(index)?
        .get("action")?
        .as_table()?;
    action
        .keys()
        .filter(|key| key.as_str() != "type")
        .find(|key| {
            let mut without = action.clone();
            without.remove(key.as_str());
            match toml::Value::Table(without).try_into::<Action>() {
                Ok(_) => true,
                Err(error) => error.message() == format!("missing field `{key}`"),
            }
        })
        .cloned()
}

/// The 1-based line where rule `index` sets `key` of its table `[rule.<table>]` (or the
/// dotted `<table>.<key>` in the rule's own table).
pub(super) fn parameter_line(
    text: &str,
    headers: &RuleHeaders,
    index: usize,
    table: &str,
    key: &str,
) -> Option<usize> {
    let start = headers.line_of(index)?;
    let end = headers.line_of(index + 1).unwrap_or(usize::MAX);
    let sub_table = format!("rule.{table}");
    let dotted = format!("{table}.{key}");
    let mut current = String::from("rule");
    for (at, line) in text
        .lines()
        .enumerate()
        .skip(start)
        .take(end.saturating_sub(start + 1))
    {
        let line = line.trim();
        if line.starts_with('[') {
            current = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .replace(' ', "");
            continue;
        }
        let Some((written, _)) = line.split_once('=') else {
            continue;
        };
        let written = written.trim().trim_matches('"').trim_matches('\'');
        if (current == sub_table && written == key) || (current == "rule" && written == dotted) {
            return Some(at + 1);
        }
    }
    None
}

/// A TOML syntax error. The file could not be parsed, so the rule and the key at fault are
/// read from the text around the error's line.
fn syntax_error(text: &str, headers: &RuleHeaders, error: &toml::de::Error) -> RulesError {
    let line = error.span().map(|span| line_at(text, span.start));
    let (rule, field) = line.map_or((None, None), |line| locate_line(text, headers, line));
    RulesError {
        problems: vec![RuleProblem {
            line,
            rule,
            field,
            message: format!("not valid TOML: {}", error.message()),
        }],
    }
}

/// The rule (its `name`, or `rule #N`) and the dotted key written on `line` (1-based), by
/// reading the raw lines: the table header above the line, and the `key =` on it.
fn locate_line(text: &str, headers: &RuleHeaders, line: usize) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = line.checked_sub(1).filter(|at| *at < lines.len()) else {
        return (None, None);
    };
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let table_of = |l: &str| -> String {
        l.trim()
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    // The table the line is in: its own header, or the nearest one above it.
    let table = if is_header(lines[at]) {
        Some(table_of(lines[at]))
    } else {
        lines[..at]
            .iter()
            .rev()
            .find(|l| is_header(l))
            .map(|l| table_of(l))
    };
    let key = (!is_header(lines[at]))
        .then(|| lines[at].split_once('='))
        .flatten()
        .map(|(key, _)| key.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('#'));
    let in_rule = table
        .as_deref()
        .is_some_and(|table| table == "rule" || table.starts_with("rule."));
    if !in_rule {
        let field = match (table.filter(|t| !t.is_empty()), key) {
            (Some(table), Some(key)) => Some(format!("{table}.{key}")),
            (table, key) => key.or(table),
        };
        return (None, field);
    }
    let Some(index) = headers.rule_at(line) else {
        return (None, key);
    };
    let start = headers.line_of(index).unwrap_or(1).saturating_sub(1);
    let end = headers
        .line_of(index + 1)
        .map_or(lines.len(), |next| next - 1);
    let name = lines
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .take_while(|l| !l.trim_start().starts_with("[rule."))
        .filter_map(|l| l.split_once('='))
        .find(|(key, _)| key.trim() == "name")
        .and_then(|(_, value)| {
            let value = value.trim();
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = &value[1..];
            inner.find(quote).map(|close| inner[..close].to_owned())
        })
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| format!("rule #{}", index + 1));
    let sub_table = table
        .as_deref()
        .and_then(|table| table.strip_prefix("rule."))
        .map(str::to_owned);
    let field = match (sub_table, key) {
        (Some(table), Some(key)) => Some(format!("{table}.{key}")),
        (table, key) => key.or(table),
    };
    (Some(name), field)
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn join_field(parent: &str, child: &str) -> String {
    if parent.is_empty() || parent == "." {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

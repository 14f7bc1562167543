//! Plain-text renderings for people at a terminal (`--output table`).

use std::fmt::Write as _;

use autoheal_core::{Outcome, RuleSet, Statistics};

/// "15 rules (15 enabled): infrastructure 3, platform 3, ..."
pub fn rule_summary(rules: &RuleSet) -> String {
    let counts = rules.counts();
    let total: usize = counts.values().map(|(all, _)| all).sum();
    let enabled: usize = counts.values().map(|(_, on)| on).sum();
    let per_layer: Vec<String> = counts
        .iter()
        .map(|(layer, (all, _))| format!("{layer} {all}"))
        .collect();
    format!(
        "valid: {total} rules ({enabled} enabled): {}",
        per_layer.join(", ")
    )
}

fn row(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{key:<14} {value}");
}

fn opt(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

pub fn outcome_table(outcome: &Outcome) -> String {
    let mut out = String::new();
    row(&mut out, "layer", outcome.layer.map_or("-", |l| l.as_str()));
    row(
        &mut out,
        "alarm",
        format!("{} ({})", outcome.alarm_name, outcome.alarm_state.as_str()),
    );
    row(&mut out, "rule", opt(outcome.rule.as_deref()));
    row(&mut out, "resource", opt(outcome.resource_id.as_deref()));
    row(&mut out, "action", opt(outcome.action.as_deref()));
    row(&mut out, "decision", outcome.decision);
    row(
        &mut out,
        "reason",
        outcome.reason.map_or("-", |r| r.as_str()),
    );
    row(&mut out, "detail", opt(outcome.detail.as_deref()));
    if let Some(record) = &outcome.record {
        row(&mut out, "status", record.status);
        row(&mut out, "attempt", record.attempt);
        row(&mut out, "incident", opt(record.incident_id.as_deref()));
        row(&mut out, "started", record.started_at.to_rfc3339());
        row(
            &mut out,
            "ended",
            record
                .ended_at
                .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
        );
        row(&mut out, "error", opt(record.error.as_deref()));
        for (key, value) in &record.details {
            row(&mut out, key, value);
        }
    }
    out
}

pub fn stats_table(stats: &Statistics) -> String {
    let mut out = String::new();
    row(&mut out, "total", stats.total);
    row(&mut out, "completed", stats.completed);
    row(&mut out, "failed", stats.failed);
    row(&mut out, "skipped", stats.skipped);
    row(&mut out, "active", stats.active);
    row(
        &mut out,
        "success rate",
        stats
            .success_rate
            .map_or_else(|| "-".to_owned(), |rate| format!("{:.1} %", rate * 100.0)),
    );
    row(
        &mut out,
        "rules",
        format!(
            "{} registered, {} enabled",
            stats.rules_registered, stats.rules_enabled
        ),
    );
    let runs = |counts: &autoheal_core::report::stats::LayerCounts| {
        format!(
            "{} runs: {} completed, {} failed, {} skipped, {} active",
            counts.total, counts.completed, counts.failed, counts.skipped, counts.active
        )
    };
    for (layer, counts) in &stats.per_layer {
        row(&mut out, layer.as_str(), runs(counts));
    }
    for (account, counts) in &stats.per_account {
        row(&mut out, &format!("account {account}"), runs(counts));
    }
    for (reason, count) in &stats.skipped_by_reason {
        row(&mut out, &format!("skip {reason}"), count);
    }
    out
}

/// Incidents as readable timelines.
pub fn timelines_table(timelines: &[autoheal_core::report::history::Timeline]) -> String {
    if timelines.is_empty() {
        return "no incident in that time\n".to_owned();
    }
    let mut out = String::new();
    for timeline in timelines {
        let place = match (&timeline.account, &timeline.region) {
            (Some(account), Some(region)) => format!(" in {account}/{region}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{} on {}{place} (incident {}, alarm {}): {}\n",
            timeline.rule,
            timeline.resource_id,
            timeline.incident_id,
            timeline.alarm_name,
            timeline.state
        ));
        out.push_str(&format!(
            "  {}  detected\n",
            timeline.detected_at.format("%Y-%m-%d %H:%M:%S")
        ));
        for step in &timeline.steps {
            out.push_str(&format!(
                "  {}  {:<11} attempt {}  {:<24} {}\n",
                step.at.format("%Y-%m-%d %H:%M:%S"),
                step.stage,
                step.attempt,
                step.status,
                step.summary
            ));
        }
    }
    out
}

//! The checks of a rule's alarm definition (`[rule.alarm]`), each problem as the field at
//! fault and what is wrong with it.

use super::alarm::{AlarmSpec, MAX_DIMENSIONS, is_valid_period, statistic_kind};
use super::rule::{ResourceSelector, Trigger};

impl AlarmSpec {
    /// Problems with the definition, as (field, message) pairs.
    pub(super) fn problems(
        &self,
        rule: &str,
        trigger: &Trigger,
        resource: &ResourceSelector,
    ) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.metric.trim().is_empty() {
            problems.push(("alarm.metric", "must not be empty".to_owned()));
        }
        match &self.namespace {
            Some(namespace) if namespace.trim().is_empty() => {
                problems.push(("alarm.namespace", "must not be empty".to_owned()))
            }
            None if !self.application_metric => problems.push((
                "alarm.namespace",
                "is required, unless `application_metric = true` (then every namespace is searched)"
                    .to_owned(),
            )),
            _ => {}
        }
        if let Err(message) = statistic_kind(&self.statistic) {
            problems.push(("alarm.statistic", message));
        }
        if !is_valid_period(self.period_seconds) {
            problems.push((
                "alarm.period_seconds",
                format!(
                    "must be 10, 20, 30 or a multiple of 60, not {}",
                    self.period_seconds
                ),
            ));
        }
        if self.evaluation_periods == 0 {
            problems.push(("alarm.evaluation_periods", "must be at least 1".to_owned()));
        } else {
            // CloudWatch evaluates at most one day of periods shorter than an hour, and at
            // most seven days of longer ones.
            let span = u64::from(self.period_seconds) * u64::from(self.evaluation_periods);
            let most = if self.period_seconds >= 3600 {
                7 * 86_400
            } else {
                86_400
            };
            if span > most {
                problems.push((
                    "alarm.evaluation_periods",
                    format!(
                        "{} periods of {} s span {span} s, more than the {most} s CloudWatch evaluates",
                        self.evaluation_periods, self.period_seconds
                    ),
                ));
            }
        }
        if let Some(datapoints) = self.datapoints_to_alarm
            && !(1..=self.evaluation_periods.max(1)).contains(&datapoints)
        {
            problems.push((
                "alarm.datapoints_to_alarm",
                format!(
                    "must be from 1 to evaluation_periods ({}), not {datapoints}",
                    self.evaluation_periods
                ),
            ));
        }
        if !self.threshold.is_finite() {
            problems.push(("alarm.threshold", "must be a finite number".to_owned()));
        }
        match (&self.minus, &self.divided_by) {
            (Some(_), Some(_)) => problems.push((
                "alarm.divided_by",
                "cannot be given with `minus`: the alarm watches one of the two".to_owned(),
            )),
            (Some(other), None) if other.trim().is_empty() => {
                problems.push(("alarm.minus", "must not be empty".to_owned()))
            }
            (None, Some(other)) if other.trim().is_empty() => {
                problems.push(("alarm.divided_by", "must not be empty".to_owned()))
            }
            _ => {}
        }
        if (self.minus.is_some() || self.divided_by.is_some())
            && (self.statistic.starts_with('p') || self.application_metric)
        {
            problems.push((
                "alarm.statistic",
                "`minus` and `divided_by` take a plain statistic of an AWS metric".to_owned(),
            ));
        }
        problems.extend(self.dimension_problems(trigger, resource));
        problems.extend(self.selection_problems(rule, trigger));
        problems
    }

    fn dimension_problems(
        &self,
        trigger: &Trigger,
        resource: &ResourceSelector,
    ) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if resource.alarm_tag.is_some() {
            problems.push((
                "alarm",
                "a rule whose resource is named by an alarm tag has no metric alarm to create: name the resource by `dimension` or `template`"
                    .to_owned(),
            ));
            return problems;
        }
        let names = self.dimension_names_for(trigger, resource);
        if names.iter().any(|name| name.trim().is_empty()) {
            problems.push((
                "alarm.dimensions",
                "must not contain an empty string".to_owned(),
            ));
        }
        if names.len() > MAX_DIMENSIONS {
            problems.push((
                "alarm.dimensions",
                format!("a metric has at most {MAX_DIMENSIONS} dimensions"),
            ));
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != names.len() {
            problems.push(("alarm.dimensions", "names a dimension twice".to_owned()));
        }
        for needed in resource.dimension_names() {
            if !names.contains(&needed) {
                problems.push((
                    "alarm.dimensions",
                    format!(
                        "must include `{needed}`: the rule reads its resource from it, so the alarm carries it"
                    ),
                ));
            }
        }
        problems
    }

    /// A rule selected by its metric must be selected by its own alarm's metric, or every
    /// alarm autoheal creates for it would reach no rule (or another one).
    fn selection_problems(&self, rule: &str, trigger: &Trigger) -> Vec<(&'static str, String)> {
        // The alarm is named `<rule>-<resource>`: a prefix it starts with selects the rule.
        let name = format!("{rule}-");
        if trigger
            .alarm_name_prefixes
            .iter()
            .any(|prefix| !prefix.trim().is_empty() && name.starts_with(prefix.as_str()))
        {
            return Vec::new();
        }
        let Some(namespace) = &trigger.namespace else {
            return vec![(
                "alarm",
                format!(
                    "the alarms autoheal creates are named `{rule}-<resource>`, which none of the trigger's `alarm_name_prefixes` starts: add `{rule}`"
                ),
            )];
        };
        let mut problems = Vec::new();
        if self.namespace.as_ref() != Some(namespace) {
            problems.push((
                "alarm.namespace",
                format!(
                    "must be the trigger's namespace `{namespace}`: an alarm in another would not select this rule"
                ),
            ));
        }
        if !trigger.metrics.is_empty() && !trigger.metrics.contains(&self.metric) {
            problems.push((
                "alarm.metric",
                format!(
                    "must be one of the trigger's metrics ({}): another would not select this rule",
                    trigger.metrics.join(", ")
                ),
            ));
        }
        problems
    }
}

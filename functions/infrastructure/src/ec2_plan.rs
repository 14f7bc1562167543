//! The choice `recover-ec2-instance` makes for a standalone instance, from the live status
//! checks, the attempt and the rule's switches: reboot, stop and start, or leave it. Pure.

use autoheal_core::SkipReason;

use crate::instance_status::{AlarmedCheck, CheckStatus};
use crate::instances::StopStartRisk;

/// What the live facts are, for [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    pub system: CheckStatus,
    pub instance: CheckStatus,
    pub alarmed: AlarmedCheck,
    pub attempt: u32,
    pub reboot_first: bool,
    pub allow_stop_start: bool,
    /// The alarm's own EC2 action rebooted the instance when it fired.
    pub alarm_rebooted: bool,
}

/// What the live facts call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Reboot,
    /// Stop and start; `system`: the host's check fails (else the guest's).
    StopStart {
        system: bool,
    },
    Skip {
        reason: SkipReason,
        why: String,
    },
}

/// The failing check, the attempt and the rule's switches decide the recovery. Pure.
pub fn plan(situation: &Situation, risk: &StopStartRisk) -> Plan {
    let skip = |reason, why: &str| Plan::Skip {
        reason,
        why: why.to_owned(),
    };
    let system_failed = match (situation.system, situation.instance) {
        (CheckStatus::Impaired, _) => true,
        (_, CheckStatus::Impaired) => false,
        (CheckStatus::Ok, CheckStatus::Ok) => {
            return skip(SkipReason::NotNeeded, "both status checks pass again");
        }
        (CheckStatus::Initializing, _) | (_, CheckStatus::Initializing) => {
            return skip(
                SkipReason::NotNeeded,
                "its status checks are initializing: it was just started",
            );
        }
        // Nothing conclusive live: the alarm's metric says which check failed; when it
        // watches both, the least destructive reading (the guest) stands.
        _ => situation.alarmed == AlarmedCheck::System,
    };
    let wants_reboot = !system_failed
        && situation.reboot_first
        && situation.attempt <= 1
        && !situation.alarm_rebooted;
    if wants_reboot {
        return Plan::Reboot;
    }
    if !situation.allow_stop_start {
        return if system_failed {
            skip(
                SkipReason::Unsafe,
                "its system status check fails, which only a stop and start onto other hardware fixes, and the rule does not allow stopping it",
            )
        } else {
            Plan::Reboot
        };
    }
    match risk.why_unsafe() {
        Some(why) => Plan::Skip {
            reason: SkipReason::Unsafe,
            why: format!("it needs a stop and start, but {why}"),
        },
        None => Plan::StopStart {
            system: system_failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use CheckStatus::{Impaired, Initializing, Ok as Passing, Unknown};

    fn situation(system: CheckStatus, instance: CheckStatus, attempt: u32) -> Situation {
        Situation {
            system,
            instance,
            alarmed: AlarmedCheck::Either,
            attempt,
            reboot_first: true,
            allow_stop_start: true,
            alarm_rebooted: false,
        }
    }

    fn safe() -> StopStartRisk {
        StopStartRisk::default()
    }

    fn reason(plan: &Plan) -> Option<SkipReason> {
        match plan {
            Plan::Skip { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    #[test]
    fn a_failed_system_check_is_stopped_and_started_on_every_attempt() {
        for attempt in 1..=3 {
            let plan = plan(&situation(Impaired, Passing, attempt), &safe());
            assert_eq!(plan, Plan::StopStart { system: true }, "attempt {attempt}");
        }
    }

    #[test]
    fn a_failed_instance_check_is_rebooted_first_then_stopped_and_started() {
        let first = plan(&situation(Passing, Impaired, 1), &safe());
        let second = plan(&situation(Passing, Impaired, 2), &safe());
        let no_reboot_first = plan(
            &Situation {
                reboot_first: false,
                ..situation(Passing, Impaired, 1)
            },
            &safe(),
        );
        assert_eq!(first, Plan::Reboot);
        assert_eq!(second, Plan::StopStart { system: false });
        assert_eq!(no_reboot_first, Plan::StopStart { system: false });
    }

    #[test]
    fn the_alarms_own_reboot_counts_as_the_first_attempts() {
        let rebooted = Situation {
            alarm_rebooted: true,
            ..situation(Passing, Impaired, 1)
        };
        assert_eq!(plan(&rebooted, &safe()), Plan::StopStart { system: false });
        // A rule that never stops still reboots: a reboot more does no harm.
        let never_stops = Situation {
            allow_stop_start: false,
            ..rebooted
        };
        assert_eq!(plan(&never_stops, &safe()), Plan::Reboot);
    }

    #[test]
    fn passing_or_initializing_checks_need_nothing() {
        for (system, guest) in [
            (Passing, Passing),
            (Initializing, Passing),
            (Unknown, Initializing),
        ] {
            let facts = Situation {
                alarmed: AlarmedCheck::System,
                ..situation(system, guest, 1)
            };
            let plan = plan(&facts, &safe());
            assert_eq!(
                reason(&plan),
                Some(SkipReason::NotNeeded),
                "{system:?}/{guest:?}"
            );
        }
    }

    #[test]
    fn without_a_live_verdict_the_alarmed_metric_decides_and_either_means_the_guest() {
        let system = Situation {
            alarmed: AlarmedCheck::System,
            ..situation(Unknown, Unknown, 1)
        };
        assert_eq!(plan(&system, &safe()), Plan::StopStart { system: true });
        assert_eq!(plan(&situation(Unknown, Unknown, 1), &safe()), Plan::Reboot);
    }

    #[test]
    fn a_stop_that_would_lose_data_or_the_instance_is_unsafe() {
        for risk in [
            StopStartRisk {
                instance_store_root: true,
                ..safe()
            },
            StopStartRisk {
                instance_store_volumes: true,
                ..safe()
            },
            StopStartRisk {
                instance_storage_unknown: true,
                ..safe()
            },
            StopStartRisk {
                spot: true,
                ..safe()
            },
        ] {
            let host = plan(&situation(Impaired, Passing, 1), &risk);
            assert_eq!(reason(&host), Some(SkipReason::Unsafe), "{risk:?}");
            // A reboot keeps every kind of storage: it stays allowed.
            let guest = plan(&situation(Passing, Impaired, 1), &risk);
            assert_eq!(guest, Plan::Reboot, "{risk:?}");
        }
    }

    #[test]
    fn a_rule_that_forbids_stopping_reboots_the_guest_and_hands_the_host_to_a_person() {
        let forbid = |system, guest, attempt| Situation {
            allow_stop_start: false,
            ..situation(system, guest, attempt)
        };
        assert_eq!(plan(&forbid(Passing, Impaired, 3), &safe()), Plan::Reboot);
        let host = plan(&forbid(Impaired, Passing, 1), &safe());
        assert_eq!(reason(&host), Some(SkipReason::Unsafe));
    }
}

//! The pure act/skip decision (`decision::decide`) with an injected `now`, and the backoff
//! and idempotency helpers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use autoheal_core::policy::decision::{
    DecisionInput, Transition, attempt_wait, decide, idempotency_token,
};
use autoheal_core::{
    AlarmState, Decision, Incident, Lease, Limit, Policy, ResourceState, Revert, RuleSet,
    SkipReason,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// A budget these tests never reach: they decide one resource at a time.
const BUDGET: Limit = Limit {
    limit: 1000,
    window_seconds: 900,
};

fn policy(cooldown: u64, max_attempts: u32, stable: u64) -> Policy {
    Policy {
        cooldown_seconds: cooldown,
        max_attempts,
        stable_period_seconds: stable,
        backoff_max_seconds: 3600,
        lease_seconds: 900,
        budget: BUDGET,
        group_guard: autoheal_core::GroupGuard::default(),
        max_wait_seconds: 1800,
    }
}

/// `ec2-instance-healing` as shipped: cooldown 600 s, 3 attempts, stable period 900 s.
fn ec2_policy() -> Policy {
    RuleSet::shipped()
        .unwrap_or_else(|e| panic!("{e}"))
        .get("ec2-instance-healing")
        .expect("shipped rule")
        .policy
}

fn decide_at(
    policy: &Policy,
    state: &ResourceState,
    alarm: AlarmState,
    event_id: &str,
    event_seen: bool,
    now: DateTime<Utc>,
) -> Transition {
    decide(DecisionInput {
        policy,
        state,
        alarm,
        event_id,
        event_seen,
        run_id: &format!("run-{event_id}"),
        now,
    })
}

/// One resource's state, fed back through `decide` as the engine would: each `next` is
/// stored, and a run that acted releases its lease when it finishes.
struct Sim {
    policy: Policy,
    state: ResourceState,
}

impl Sim {
    fn new(policy: Policy) -> Self {
        Sim {
            policy,
            state: ResourceState::default(),
        }
    }

    /// Decides without finishing the run (the lease stays held).
    fn start(&mut self, event_id: &str, alarm: AlarmState, now: DateTime<Utc>) -> Decision {
        let transition = decide_at(&self.policy, &self.state, alarm, event_id, false, now);
        if let Some(next) = transition.next {
            assert_eq!(
                next.version,
                self.state.version + 1,
                "every write moves the version by one"
            );
            self.state = next;
        }
        transition.decision
    }

    /// Decides, and finishes the run if it acted.
    fn event(&mut self, event_id: &str, alarm: AlarmState, now: DateTime<Utc>) -> Decision {
        let decision = self.start(event_id, alarm, now);
        if matches!(decision, Decision::Act { .. }) {
            self.finish();
        }
        decision
    }

    /// The run's end, as the engine writes it: the lease released, the action finished.
    fn finish(&mut self) {
        self.state.lease = None;
        if let Some(incident) = self.state.incident.as_mut() {
            incident.unfinished = false;
        }
        self.state.version += 1;
    }

    fn incident(&self) -> &Incident {
        self.state.incident.as_ref().expect("an incident is open")
    }
}

#[track_caller]
fn assert_act(decision: &Decision, attempt: u32, incident: &str, new_incident: bool) {
    assert_eq!(
        decision,
        &Decision::Act {
            attempt,
            incident_id: incident.to_owned(),
            new_incident,
            takeover: false,
            resumed: false,
        }
    );
}

#[track_caller]
/// A redelivery: nothing to do, nothing to record (the event's run has its record).
fn assert_duplicate(decision: &Decision) {
    assert_eq!(
        decision,
        &Decision::Ignore {
            reason: SkipReason::Duplicate
        }
    );
}

fn assert_skip(decision: &Decision, reason: SkipReason) {
    assert_eq!(
        decision,
        &Decision::Skip {
            reason,
            escalate: false
        }
    );
}

// ------------------------------------------------------------------ one incident

#[test]
fn given_no_history_when_an_alarm_arrives_then_a_new_incident_acts_at_attempt_one() {
    let policy = ec2_policy();
    let state = ResourceState::default();

    let transition = decide_at(&policy, &state, AlarmState::Alarm, "e1", false, t0());

    assert_act(&transition.decision, 1, "e1", true);
    let next = transition.next.expect("acting stores the state");
    assert_eq!(next.version, 1);
    assert_eq!(next.last_action_at, Some(t0()));
    assert_eq!(
        next.lease,
        Some(Lease {
            run_id: "run-e1".to_owned(),
            event_id: "e1".to_owned(),
            attempt: 1,
            expires_at: at(900),
        })
    );
    let wait = attempt_wait(&policy, "e1", 1);
    assert_eq!(
        next.incident,
        Some(Incident {
            id: "e1".to_owned(),
            opened_at: t0(),
            attempts: 1,
            last_attempt_at: Some(t0()),
            next_attempt_at: Some(at(i64::try_from(wait).expect("small"))),
            ok_since: None,
            escalated_at: None,
            checks: 1,
            deferrals: 0,
            unfinished: true,
            steps: 0,
            step_checks: 0,
            resolved_at: None,
            waiting_since: None,
        })
    );
}

#[test]
fn given_an_attempt_when_a_second_alarm_arrives_inside_the_cooldown_then_it_skips_for_cooldown() {
    let mut sim = Sim::new(ec2_policy());
    sim.event("e1", AlarmState::Alarm, t0());
    let before = sim.state.clone();

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e2",
        false,
        at(599),
    );

    assert_skip(&transition.decision, SkipReason::Cooldown);
    assert_eq!(transition.next, None, "a cooldown skip stores nothing");
    assert_eq!(sim.state, before);
}

#[test]
fn given_an_attempt_when_an_alarm_arrives_after_the_cooldown_then_attempt_two_of_the_same_incident_runs()
 {
    let mut sim = Sim::new(ec2_policy());
    sim.event("e1", AlarmState::Alarm, t0());

    let decision = sim.event("e2", AlarmState::Alarm, at(600));

    assert_act(&decision, 2, "e1", false);
    assert_eq!(sim.incident().attempts, 2);
    assert_eq!(sim.incident().opened_at, t0());
    assert_eq!(sim.state.last_action_at, Some(at(600)));
}

#[test]
fn given_attempt_two_when_the_next_alarm_is_past_the_cooldown_but_before_the_backoff_then_it_waits()
{
    let policy = ec2_policy();
    let mut sim = Sim::new(policy);
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Alarm, at(600));
    let wait = attempt_wait(&policy, "e1", 2);
    assert!(
        wait > policy.cooldown_seconds + 1,
        "this incident id draws a jitter beyond the cooldown ({wait} s)"
    );
    let due = 600 + i64::try_from(wait).expect("small");
    assert_eq!(sim.incident().next_attempt_at, Some(at(due)));

    assert_skip(
        &sim.event("e3", AlarmState::Alarm, at(due - 1)),
        SkipReason::Backoff,
    );
    assert_act(&sim.event("e4", AlarmState::Alarm, at(due)), 3, "e1", false);
}

#[test]
fn given_max_attempts_spent_when_the_alarm_persists_then_it_escalates_exactly_once() {
    let mut sim = Sim::new(policy(60, 2, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Alarm, at(3600));
    assert_eq!(sim.incident().attempts, 2);

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e3",
        false,
        at(7200),
    );

    assert_eq!(
        transition.decision,
        Decision::Skip {
            reason: SkipReason::MaxAttempts,
            escalate: true
        }
    );
    let next = transition.next.expect("the escalation is stored");
    assert_eq!(next.version, sim.state.version + 1);
    let incident = next.incident.as_ref().expect("the incident stays open");
    assert_eq!(incident.escalated_at, Some(at(7200)));
    assert_eq!(incident.attempts, 2);
    assert_eq!(next.lease, None, "escalating claims nothing");

    let again = decide_at(
        &sim.policy,
        &next,
        AlarmState::Alarm,
        "e4",
        false,
        at(10_800),
    );
    assert_skip(&again.decision, SkipReason::MaxAttempts);
    assert_eq!(again.next, None);
}

#[test]
fn given_max_attempts_spent_when_the_alarm_comes_back_inside_the_cooldown_then_it_still_escalates()
{
    let mut sim = Sim::new(policy(600, 1, 900));
    sim.event("e1", AlarmState::Alarm, t0());

    let decision = sim.event("e2", AlarmState::Alarm, at(10));

    assert_eq!(
        decision,
        Decision::Skip {
            reason: SkipReason::MaxAttempts,
            escalate: true
        }
    );
}

#[test]
fn given_an_escalated_incident_when_ok_flaps_inside_the_stable_period_then_it_does_not_escalate_again()
 {
    let mut sim = Sim::new(policy(60, 1, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Alarm, at(100));
    assert!(sim.incident().escalated_at.is_some());

    sim.event("e3", AlarmState::Ok, at(200));
    let decision = sim.event("e4", AlarmState::Alarm, at(300));

    assert_skip(&decision, SkipReason::MaxAttempts);
}

// ------------------------------------------------------------------ deliveries and leases

#[test]
fn given_an_event_already_seen_when_it_is_delivered_again_then_it_is_ignored_as_duplicate() {
    let mut sim = Sim::new(ec2_policy());
    sim.event("e1", AlarmState::Alarm, t0());

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e1",
        true,
        at(5),
    );

    assert_duplicate(&transition.decision);
    assert_eq!(transition.next, None);
}

#[test]
fn given_an_event_seen_while_its_own_lease_is_still_held_then_it_is_a_duplicate() {
    let mut sim = Sim::new(ec2_policy());
    sim.start("e1", AlarmState::Alarm, t0());

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e1",
        true,
        at(60),
    );

    assert_duplicate(&transition.decision);
}

#[test]
fn given_a_held_lease_when_another_alarm_arrives_then_it_is_in_progress() {
    let mut sim = Sim::new(policy(0, 5, 900));
    sim.start("e1", AlarmState::Alarm, t0());

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e2",
        false,
        at(899),
    );

    assert_skip(&transition.decision, SkipReason::InProgress);
    assert_eq!(transition.next, None);
}

#[test]
fn given_an_expired_lease_of_the_same_event_when_it_is_redelivered_then_the_attempt_is_taken_over()
{
    let mut sim = Sim::new(ec2_policy());
    sim.start("e1", AlarmState::Alarm, t0());
    let before = sim.state.clone();

    let transition = decide(DecisionInput {
        policy: &sim.policy,
        state: &sim.state,
        alarm: AlarmState::Alarm,
        event_id: "e1",
        event_seen: true,
        run_id: "run-retry",
        now: at(901),
    });

    assert_eq!(
        transition.decision,
        Decision::Act {
            attempt: 1,
            incident_id: "e1".to_owned(),
            new_incident: false,
            takeover: true,
            resumed: false,
        }
    );
    let next = transition.next.expect("the takeover is stored");
    assert_eq!(next.version, before.version + 1);
    assert_eq!(
        next.incident, before.incident,
        "a takeover repeats the attempt: the incident does not move"
    );
    assert_eq!(
        next.lease,
        Some(Lease {
            run_id: "run-retry".to_owned(),
            event_id: "e1".to_owned(),
            attempt: 1,
            expires_at: at(901 + 900),
        })
    );
}

#[test]
fn given_an_expired_lease_at_exactly_its_expiry_then_it_is_no_longer_held() {
    let lease = Lease {
        run_id: "r".to_owned(),
        event_id: "e".to_owned(),
        attempt: 1,
        expires_at: at(900),
    };
    assert!(lease.is_held(at(899)));
    assert!(!lease.is_held(at(900)));
}

#[test]
fn given_an_expired_lease_of_another_event_when_a_new_alarm_arrives_then_it_does_not_block() {
    let mut sim = Sim::new(policy(60, 5, 900));
    sim.start("e1", AlarmState::Alarm, t0());

    let held_expired = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e2",
        false,
        at(900),
    );
    assert_act(&held_expired.decision, 2, "e1", false);

    let seen_other = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e2",
        true,
        at(900),
    );
    assert_duplicate(&seen_other.decision);
}

// ------------------------------------------------------------------ OK, recovery and new incidents

#[test]
fn given_an_open_incident_when_ok_then_alarm_inside_the_stable_period_then_the_same_incident_continues()
 {
    let mut sim = Sim::new(policy(60, 3, 900));
    sim.event("e1", AlarmState::Alarm, t0());

    let ok = sim.start("e2", AlarmState::Ok, at(100));
    assert_eq!(
        ok,
        Decision::Recovering {
            incident_id: "e1".to_owned()
        }
    );
    assert_eq!(sim.incident().ok_since, Some(at(100)));

    let decision = sim.event("e3", AlarmState::Alarm, at(100 + 899));
    assert_act(&decision, 2, "e1", false);
    assert_eq!(sim.incident().ok_since, None, "ALARM clears the recovery");
}

#[test]
fn given_an_open_incident_when_alarm_comes_after_the_stable_period_then_a_new_incident_starts() {
    let mut sim = Sim::new(policy(60, 3, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Alarm, at(60));
    assert_eq!(sim.incident().attempts, 2);
    sim.event("e3", AlarmState::Ok, at(100));

    let decision = sim.event("e4", AlarmState::Alarm, at(100 + 900));

    assert_act(&decision, 1, "e4", true);
    assert_eq!(sim.incident().id, "e4");
    assert_eq!(sim.incident().attempts, 1);
    assert_eq!(sim.incident().opened_at, at(1000));
}

#[test]
fn given_a_recovering_incident_when_an_alarm_is_skipped_then_the_recovery_is_still_interrupted() {
    let mut sim = Sim::new(policy(600, 3, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Ok, at(100));

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e3",
        false,
        at(200),
    );

    assert_skip(&transition.decision, SkipReason::Cooldown);
    let next = transition.next.expect("the interrupted recovery is stored");
    assert_eq!(next.version, sim.state.version + 1);
    let incident = next.incident.as_ref().expect("still open");
    assert_eq!(incident.ok_since, None);
    assert_eq!(incident.attempts, 1, "skipping does not count an attempt");
    assert_eq!(next.last_action_at, sim.state.last_action_at);
    assert_eq!(next.lease, None);

    // Stable-period after the first OK, the incident is still the same one.
    sim.state = next;
    assert_act(
        &sim.event("e4", AlarmState::Alarm, at(1000)),
        2,
        "e1",
        false,
    );
}

#[test]
fn given_a_recovering_incident_with_a_held_lease_when_an_alarm_arrives_then_it_is_in_progress_and_reopened()
 {
    let mut sim = Sim::new(policy(0, 3, 900));
    sim.start("e1", AlarmState::Alarm, t0());
    sim.start("e2", AlarmState::Ok, at(100));

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Alarm,
        "e3",
        false,
        at(200),
    );

    assert_skip(&transition.decision, SkipReason::InProgress);
    let next = transition.next.expect("the interrupted recovery is stored");
    assert_eq!(next.incident.and_then(|i| i.ok_since), None);
    assert_eq!(next.lease, sim.state.lease, "the other run keeps its lease");
}

#[test]
fn given_repeated_oks_when_they_arrive_then_the_first_ok_time_counts_and_nothing_more_is_stored() {
    let mut sim = Sim::new(policy(60, 3, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Ok, at(100));

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Ok,
        "e3",
        false,
        at(500),
    );

    assert_eq!(
        transition.decision,
        Decision::Recovering {
            incident_id: "e1".to_owned()
        }
    );
    assert_eq!(transition.next, None);
    // OK held since 100: at 1000 the incident is closed, though the last OK came at 500.
    assert!(sim.incident().is_closed(&sim.policy, at(1000)));
    assert!(!sim.incident().is_closed(&sim.policy, at(999)));
}

#[test]
fn given_no_open_incident_when_ok_arrives_then_it_is_ignored() {
    let state = ResourceState::default();

    let transition = decide_at(&ec2_policy(), &state, AlarmState::Ok, "e1", false, t0());

    assert_eq!(
        transition.decision,
        Decision::Ignore {
            reason: SkipReason::NoOpenIncident
        }
    );
    assert_eq!(transition.next, None);
}

#[test]
fn given_a_closed_incident_when_ok_arrives_then_it_is_ignored() {
    let mut sim = Sim::new(policy(60, 3, 900));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Ok, at(100));

    let transition = decide_at(
        &sim.policy,
        &sim.state,
        AlarmState::Ok,
        "e3",
        false,
        at(1000),
    );

    assert_eq!(
        transition.decision,
        Decision::Ignore {
            reason: SkipReason::NoOpenIncident
        }
    );
}

#[test]
fn given_insufficient_data_when_it_arrives_then_it_is_ignored_whatever_the_state() {
    let mut sim = Sim::new(ec2_policy());
    for state in [ResourceState::default(), {
        sim.start("e1", AlarmState::Alarm, t0());
        sim.state.clone()
    }] {
        let transition = decide_at(
            &sim.policy,
            &state,
            AlarmState::InsufficientData,
            "e9",
            false,
            at(10),
        );
        assert_eq!(
            transition.decision,
            Decision::Ignore {
                reason: SkipReason::NotActionable
            }
        );
        assert_eq!(transition.next, None);
    }
}

#[test]
fn given_a_cooldown_across_incidents_when_a_new_incident_starts_inside_it_then_it_waits() {
    // The cooldown is per resource: a new incident does not reset it.
    let mut sim = Sim::new(policy(3600, 3, 60));
    sim.event("e1", AlarmState::Alarm, t0());
    sim.event("e2", AlarmState::Ok, at(10));

    assert_skip(
        &sim.event("e3", AlarmState::Alarm, at(100)),
        SkipReason::Cooldown,
    );
    assert_act(&sim.event("e4", AlarmState::Alarm, at(3600)), 1, "e4", true);
}

#[test]
fn given_huge_timings_in_the_policy_when_deciding_then_it_saturates_instead_of_panicking() {
    for huge in [
        u64::MAX,
        i64::MAX as u64,
        (i64::MAX / 1000) as u64 + 1,
        10_u64.pow(13),
    ] {
        let policy = Policy {
            cooldown_seconds: huge,
            max_attempts: 3,
            stable_period_seconds: huge,
            backoff_max_seconds: huge,
            lease_seconds: huge,
            budget: BUDGET,
            group_guard: autoheal_core::GroupGuard::default(),
            max_wait_seconds: 1800,
        };
        let mut sim = Sim::new(policy);
        assert_act(&sim.event("e1", AlarmState::Alarm, t0()), 1, "e1", true);
        assert_eq!(sim.state.lease, None);
        assert_skip(
            &sim.event("e2", AlarmState::Alarm, at(1)),
            SkipReason::Cooldown,
        );
        let held = sim.start("e3", AlarmState::Ok, at(2));
        assert!(matches!(held, Decision::Recovering { .. }), "{held:?}");
    }
}

// ------------------------------------------------------------------ backoff and tokens

#[test]
fn given_a_policy_when_waits_are_computed_then_the_first_is_the_cooldown_and_they_are_capped() {
    let policy = ec2_policy();
    assert_eq!(attempt_wait(&policy, "incident", 1), 600);
    for attempt in 2..40 {
        let wait = attempt_wait(&policy, "incident", attempt);
        assert!((600..=3600).contains(&wait), "attempt {attempt}: {wait}");
    }
    // From the cap on, the base no longer grows: the wait stays within [cap / 2, cap].
    assert!(attempt_wait(&policy, "incident", 30) >= 1800);
}

#[test]
fn given_a_backoff_cap_below_the_cooldown_when_waits_are_computed_then_the_cooldown_wins() {
    let policy = Policy {
        backoff_max_seconds: 10,
        ..ec2_policy()
    };
    for attempt in 1..10 {
        assert_eq!(attempt_wait(&policy, "incident", attempt), 600);
    }
}

#[test]
fn given_the_same_inputs_when_tokens_are_made_then_they_are_equal_short_and_per_attempt() {
    let first = idempotency_token("ec2-instance-healing", "i-1", "e1", 1);
    assert_eq!(
        first,
        idempotency_token("ec2-instance-healing", "i-1", "e1", 1)
    );
    assert!(first.len() <= 64, "{first}");
    assert!(first.starts_with("autoheal-"), "{first}");
    assert_ne!(
        first,
        idempotency_token("ec2-instance-healing", "i-1", "e1", 2)
    );
    assert_ne!(
        first,
        idempotency_token("ec2-instance-healing", "i-2", "e1", 1)
    );
    assert_ne!(
        first,
        idempotency_token("ec2-instance-healing", "i-1", "e2", 1)
    );
    assert_ne!(
        first,
        idempotency_token("asg-capacity-healing", "i-1", "e1", 1)
    );
}

// ------------------------------------------------------------------ properties

/// Counts what a run of events did, per incident.
#[derive(Debug, Default)]
struct Tally {
    acts: BTreeMap<String, u32>,
    escalations: BTreeMap<String, u32>,
    act_times: Vec<DateTime<Utc>>,
}

impl Tally {
    fn total_acts(&self) -> u32 {
        self.acts.values().sum()
    }
}

/// Feeds `events` (seconds since the previous event, ALARM or OK) through `decide`.
fn run(policy: Policy, events: &[(u64, bool)]) -> Tally {
    let mut sim = Sim::new(policy);
    let mut tally = Tally::default();
    let mut now = t0();
    for (index, (gap, alarm)) in events.iter().enumerate() {
        now += Duration::seconds(i64::try_from(*gap).expect("small gaps"));
        let alarm = if *alarm {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        let decision = sim.event(&format!("e{index}"), alarm, now);
        match decision {
            Decision::Act {
                attempt,
                incident_id,
                takeover,
                ..
            } => {
                assert!(!takeover, "no run died, so nothing is taken over");
                let acts = tally.acts.entry(incident_id.clone()).or_default();
                *acts += 1;
                assert_eq!(attempt, *acts, "attempts count up by one per incident");
                tally.act_times.push(now);
            }
            Decision::Skip {
                escalate: true,
                reason,
            } => {
                assert_eq!(reason, SkipReason::MaxAttempts);
                let incident = sim.incident();
                assert_eq!(incident.attempts, policy.max_attempts);
                *tally.escalations.entry(incident.id.clone()).or_default() += 1;
            }
            _ => {}
        }
    }
    tally
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (0u64..1200, 1u32..6, 1u64..1800, 0u64..7200, 1u64..1800).prop_map(
        |(cooldown, max_attempts, stable, backoff, lease)| Policy {
            cooldown_seconds: cooldown,
            max_attempts,
            stable_period_seconds: stable,
            backoff_max_seconds: backoff,
            lease_seconds: lease,
            budget: BUDGET,
            group_guard: autoheal_core::GroupGuard::default(),
            max_wait_seconds: 1800,
        },
    )
}

#[test]
fn given_twenty_flaps_within_an_hour_when_decided_then_the_shipped_policy_acts_three_times_and_escalates_once()
 {
    // ALARM every 180 s, OK 90 s later: the alarm is never OK for the stable period.
    let events: Vec<(u64, bool)> = (0..40)
        .map(|i| (if i == 0 { 0 } else { 90 }, i % 2 == 0))
        .collect();
    let tally = run(ec2_policy(), &events);
    assert_eq!(tally.total_acts(), 3, "{tally:?}");
    assert_eq!(tally.acts.len(), 1, "one incident: {tally:?}");
    assert_eq!(tally.escalations.values().sum::<u32>(), 1, "{tally:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn given_any_alarm_ok_sequence_when_decided_then_no_incident_acts_more_than_max_attempts(
        policy in arb_policy(),
        events in prop::collection::vec((0u64..2400, any::<bool>()), 0..80),
    ) {
        let tally = run(policy, &events);
        for (incident, acts) in &tally.acts {
            prop_assert!(*acts <= policy.max_attempts, "incident {} acted {} times", incident, acts);
        }
        for (incident, escalations) in &tally.escalations {
            prop_assert_eq!(*escalations, 1, "incident {} escalated {} times", incident, escalations);
        }
        for pair in tally.act_times.windows(2) {
            let gap = (pair[1] - pair[0]).num_seconds();
            prop_assert!(
                u64::try_from(gap).is_ok_and(|gap| gap >= policy.cooldown_seconds),
                "two acts {} s apart with a cooldown of {} s", gap, policy.cooldown_seconds
            );
        }
    }

    #[test]
    fn given_an_alarm_flapping_for_an_hour_with_a_900_s_stable_period_then_at_most_max_attempts_act(
        policy in arb_policy(),
        gaps in prop::collection::vec(1u64..900, 1..120),
        starts_with_alarm in any::<bool>(),
    ) {
        let policy = Policy { stable_period_seconds: 900, ..policy };
        // Strict ALARM/OK alternation, each state shorter than the stable period, within
        // one hour.
        let mut elapsed = 0;
        let mut events = Vec::new();
        for (index, gap) in gaps.iter().enumerate() {
            let gap = if index == 0 { 0 } else { *gap };
            elapsed += gap;
            if elapsed > 3600 {
                break;
            }
            events.push((gap, (index % 2 == 0) == starts_with_alarm));
        }
        let tally = run(policy, &events);
        prop_assert!(tally.acts.len() <= 1, "one incident expected: {:?}", tally);
        prop_assert!(tally.total_acts() <= policy.max_attempts, "{:?}", tally);
    }

    #[test]
    fn given_any_policy_when_a_wait_is_computed_then_it_is_between_cooldown_and_the_cap(
        cooldown in prop_oneof![0u64..100_000, any::<u64>()],
        backoff_max in prop_oneof![0u64..100_000, any::<u64>()],
        attempt in prop_oneof![0u32..64, any::<u32>()],
        incident in ".{0,40}",
    ) {
        let policy = Policy {
            cooldown_seconds: cooldown,
            max_attempts: 3,
            stable_period_seconds: 900,
            backoff_max_seconds: backoff_max,
            lease_seconds: 900,
            budget: BUDGET,
            group_guard: autoheal_core::GroupGuard::default(),
            max_wait_seconds: 1800,
        };
        let wait = attempt_wait(&policy, &incident, attempt);
        prop_assert!(wait >= cooldown, "wait {} < cooldown {}", wait, cooldown);
        prop_assert!(wait <= backoff_max.max(cooldown), "wait {} above the cap", wait);
        prop_assert_eq!(wait, attempt_wait(&policy, &incident, attempt), "deterministic");
    }

    #[test]
    fn given_any_inputs_when_tokens_are_made_then_they_are_deterministic_bounded_and_per_attempt(
        rule in ".{0,80}",
        resource in ".{0,300}",
        incident in ".{0,80}",
        attempt in any::<u32>(),
        other in any::<u32>(),
    ) {
        let token = idempotency_token(&rule, &resource, &incident, attempt);
        prop_assert_eq!(&token, &idempotency_token(&rule, &resource, &incident, attempt));
        prop_assert!(token.len() <= 64, "{} is {} long", token, token.len());
        prop_assert!(
            token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{}", token
        );
        if other != attempt {
            prop_assert_ne!(token, idempotency_token(&rule, &resource, &incident, other));
        }
    }

    #[test]
    fn given_any_policy_and_state_when_deciding_then_it_never_panics_and_writes_one_version_up(
        cooldown in any::<u64>(),
        stable in any::<u64>(),
        backoff in any::<u64>(),
        lease in any::<u64>(),
        max_attempts in any::<u32>(),
        attempts in any::<u32>(),
        offsets in prop::collection::vec(prop::option::of(-100_000i64..100_000), 5),
        alarm in prop::sample::select(vec![AlarmState::Alarm, AlarmState::Ok, AlarmState::InsufficientData]),
        event_seen in any::<bool>(),
        same_event in any::<bool>(),
        version in 0u64..1000,
        pending_reverts in 0usize..3,
    ) {
        let policy = Policy {
            cooldown_seconds: cooldown,
            max_attempts,
            stable_period_seconds: stable,
            backoff_max_seconds: backoff,
            lease_seconds: lease,
            budget: BUDGET,
            group_guard: autoheal_core::GroupGuard::default(),
            max_wait_seconds: 1800,
        };
        let time = |i: usize| offsets[i].map(at);
        let state = ResourceState {
            version,
            last_action_at: time(0),
            incident: time(1).map(|opened_at| Incident {
                id: "open".to_owned(),
                opened_at,
                attempts,
                last_attempt_at: time(2),
                next_attempt_at: time(3),
                ok_since: time(4),
                escalated_at: None,
                checks: 0,
                deferrals: 0,
                unfinished: false,
                steps: 0,
                step_checks: 0,
                resolved_at: None,
                waiting_since: None,
            }),
            lease: time(2).map(|expires_at| Lease {
                run_id: "old-run".to_owned(),
                event_id: if same_event { "e".to_owned() } else { "other".to_owned() },
                attempt: attempts,
                expires_at,
            }),
            reverts: (0..pending_reverts).map(|n| Revert::new("undo").with("n", n)).collect(),
            revert_checks: 0,
        };
        let transition = decide_at(&policy, &state, alarm, "e", event_seen, t0());
        if let Some(next) = &transition.next {
            prop_assert_eq!(next.version, version + 1);
            prop_assert_eq!(&next.reverts, &state.reverts, "only a finishing run changes what is to be put back");
        }
        if let Decision::Revert { .. } = transition.decision {
            prop_assert_eq!(alarm, AlarmState::Ok);
            prop_assert!(!state.reverts.is_empty());
            prop_assert!(state.lease.as_ref().is_none_or(|lease| !lease.is_held(t0())), "never while another run holds the resource");
            prop_assert!(transition.next.as_ref().and_then(|next| next.lease.as_ref()).is_some(), "a revert claims the resource");
        }
        if let Decision::Act { attempt, .. } = transition.decision {
            prop_assert!(attempt >= 1 && attempt <= max_attempts.max(attempts));
            prop_assert!(transition.next.is_some(), "an act always stores its claim");
        }
    }
}

/// A deferral's retry is spread over the minute after its window reopens; a window that
/// reopens "never" (a huge cooldown's latest instant, stored as a group slot's end) stays
/// never instead of panicking.
#[test]
fn given_a_window_that_reopens_never_when_spread_then_it_saturates() {
    use autoheal_core::policy::budget::spread;
    let never = chrono::DateTime::<chrono::Utc>::MAX_UTC;
    for key in ["i-1", "i-2", "group#web", ""] {
        assert_eq!(spread(never, key), never);
        let spread_at = spread(t0(), key);
        assert!(spread_at >= t0() && spread_at < at(60), "{spread_at}");
    }
}

/// An action that continues in follow-ups keeps its incident open however long the alarm has
/// been OK: its remaining steps, and what it puts back at its end, are not abandoned.
#[test]
fn given_an_action_under_way_when_ok_holds_past_the_stable_period_then_the_incident_stays_open() {
    let policy = policy(600, 3, 900);
    let mut incident = Incident::open("e1", t0());
    incident.ok_since = Some(t0());
    incident.unfinished = true;
    assert!(!incident.is_closed(&policy, at(10_000)));
    incident.unfinished = false;
    assert!(incident.is_closed(&policy, at(900)));
    assert!(!incident.is_closed(&policy, at(899)));
}

/// A failed revert is retried a minute later, doubling to at most an hour, never before the
/// run's lease ends; with nothing to put back, or no change with a try left, nothing is
/// retried.
#[test]
fn a_failed_revert_is_retried_with_a_growing_wait_until_its_tries_are_spent() {
    use autoheal_core::MAX_REVERT_TRIES;
    use autoheal_core::policy::revert::{retry_of, retry_wait};

    let waits: Vec<u64> = (0..8).map(retry_wait).collect();
    assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(retry_wait(u32::MAX), 3600, "saturates");

    let failed = |failures| Revert {
        failures,
        ..Revert::new("undo").with("n", 1)
    };
    let state = |reverts: Vec<Revert>, lease_seconds: i64| ResourceState {
        version: 2,
        reverts,
        revert_checks: 4,
        lease: Some(Lease {
            run_id: "revert".to_owned(),
            event_id: "ok".to_owned(),
            attempt: 1,
            expires_at: at(lease_seconds),
        }),
        ..ResourceState::default()
    };
    assert_eq!(retry_of(&state(Vec::new(), 900), t0()), None);
    assert_eq!(
        retry_of(&state(vec![failed(0)], 900), t0()),
        Some((4, at(900))),
        "after the lease"
    );
    assert_eq!(
        retry_of(&state(vec![failed(4)], 30), t0()),
        Some((4, at(960))),
        "after its wait"
    );
    assert_eq!(
        retry_of(&state(vec![failed(MAX_REVERT_TRIES)], 900), t0()),
        None,
        "a change with no try left is a person's"
    );
    assert!(
        retry_of(&state(vec![failed(0), failed(MAX_REVERT_TRIES)], 900), t0()).is_some(),
        "an older change with tries left is still retried, once the newer is put back"
    );
}

//! The group guard: the safety governor's limit on how much of one group (an Auto Scaling
//! group, an ECS service, a load-balancer target group) autoheal heals at once. A rule sets
//! its limits ([`GroupGuard`](crate::model::limits::GroupGuard)); this module applies them to
//! a live group.
//!
//! - **At once**: at most `max_healing_percent` of a group's members (at least one) are in
//!   healing at the same time. A member in healing holds one of the group's slots, taken in
//!   the claim's own DynamoDB transaction and held until the attempt's follow-up checks it; a
//!   member that cannot take a slot is deferred until the first one frees.
//! - **Storms**: while more than `max_unhealthy_percent` of the group is unhealthy, no member
//!   is healed. A fault shared by most of a pool (a dependency down, a bad deploy) is not a
//!   per-member fault, and replacing members would only add to it. One unhealthy member is
//!   never a storm, whatever the group's size.
//!
//! Actions that heal several members of a group in one run (stopping a service's unhealthy
//! tasks, deregistering failing targets) apply the same two limits through
//! [`GroupGuard::allowance`](crate::model::limits::GroupGuard::allowance).

use chrono::{DateTime, Utc};

/// A storm is looked at again after this long.
pub const STORM_RECHECK_SECONDS: i64 = 300;
/// A group's deferrals are notified once per window of this length.
pub const NOTICE_WINDOW_SECONDS: u64 = 900;

/// The group a resource belongs to, read live just before autoheal acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Kind and name, unique in the account and region: `auto-scaling-group/web`.
    pub id: String,
    /// Its members.
    pub size: u32,
    /// Its members that are unhealthy now, the alarmed one included.
    pub unhealthy: u32,
}

/// One of a group's healing slots, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    /// The resource that holds it.
    pub holder: String,
    /// When it frees, whoever holds it.
    pub until: DateTime<Utc>,
}

/// What a claim writes to hold a slot of a group. The write is conditional: it succeeds only
/// while the slot is free at `now` (never taken, expired) or already the holder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub group: String,
    pub slot: u32,
    pub holder: String,
    pub until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// The slot `holder` may take among a group's `capacity` slots at `now` (its own, or the
/// first free), or, when all are held by others, the time the first frees.
pub fn choose_slot(
    slots: &[Slot],
    capacity: u32,
    holder: &str,
    now: DateTime<Utc>,
) -> Result<u32, DateTime<Utc>> {
    let held = |slot: &&Slot| slot.index < capacity && slot.until > now;
    if let Some(own) = slots.iter().filter(held).find(|slot| slot.holder == holder) {
        return Ok(own.index);
    }
    if let Some(free) =
        (0..capacity).find(|index| !slots.iter().filter(held).any(|s| s.index == *index))
    {
        return Ok(free);
    }
    Err(slots
        .iter()
        .filter(held)
        .map(|slot| slot.until)
        .min()
        .unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    fn slot(index: u32, holder: &str, until: i64) -> Slot {
        Slot {
            index,
            holder: holder.to_owned(),
            until: at(until),
        }
    }

    #[test]
    fn a_resource_takes_its_own_slot_then_the_first_free_one() {
        let now = at(0);
        let slots = [slot(0, "i-a", 60), slot(1, "i-b", -1)];
        assert_eq!(choose_slot(&slots, 2, "i-a", now), Ok(0));
        assert_eq!(choose_slot(&slots, 2, "i-c", now), Ok(1), "slot 1 expired");
        assert_eq!(choose_slot(&[], 2, "i-c", now), Ok(0));
    }

    #[test]
    fn with_every_slot_held_the_resource_waits_for_the_first_to_free() {
        let now = at(0);
        let slots = [slot(0, "i-a", 600), slot(1, "i-b", 300)];
        assert_eq!(choose_slot(&slots, 2, "i-c", now), Err(at(300)));
        // A slot beyond a capacity that shrank holds nothing back, and is nobody's to reuse.
        assert_eq!(choose_slot(&slots, 1, "i-b", now), Err(at(600)));
        assert_eq!(
            choose_slot(&slots, 3, "i-c", now + Duration::seconds(1)),
            Ok(2)
        );
    }
}

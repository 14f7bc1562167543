//! The floors of the core, from the bottom up: the one table the floor test
//! (`tests/floors.rs`) holds every import of this crate to. A module's floor is the first
//! segment of its path (`model::rules::load` stands on `model`); a module may import from its
//! own floor and from the floors below it, and no import may close a circle.

/// The floors, bottom first, each with what it holds.
pub const FLOORS: &[(&str, &str)] = &[
    (
        "model",
        "what everything speaks: events, layers, rules, resource ids, records, incident state, limits",
    ),
    (
        "policy",
        "pure decisions over the model: selection, act or skip, budgets, group guard, follow-ups, retention",
    ),
    (
        "report",
        "what a run leaves behind and what is read back: outcome, notice, metrics, history, statistics",
    ),
    (
        "ports",
        "the traits the engine is generic over, the types that cross them and their errors",
    ),
    (
        "engine",
        "the path of one event through the ports, one file per step",
    ),
];

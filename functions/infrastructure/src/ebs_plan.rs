//! The one step each attempt of `repair-ebs-volume` takes, least destructive first (see
//! [`crate::ebs`]). Pure.

use autoheal_core::SkipReason;

/// The instance a volume is attached to, as the plan sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub id: String,
    /// The volume is its root device.
    pub root: bool,
    /// It runs, or an autoheal run stopped it under its mark and starts it again.
    pub running_or_marked: bool,
    /// Its state, for a person.
    pub state: String,
    /// Why it must not be stopped, if it must not.
    pub refusal: Option<String>,
}

/// What the plan looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub attempt: u32,
    pub io_disabled: bool,
    pub multi_attach: bool,
    pub host: Option<Host>,
}

/// What one attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    EnableIo,
    StopStart,
    Replace,
    Skip { reason: SkipReason, why: String },
}

impl Step {
    /// Whether the step stops the volume's instance.
    pub fn stops(&self, seen: &Seen) -> bool {
        matches!(self, Step::StopStart) || (matches!(self, Step::Replace) && seen.host.is_some())
    }
}

/// The least destructive step that may still fix the volume, by attempt. Pure.
pub fn plan(seen: &Seen) -> Step {
    let unsafe_because = |why: String| Step::Skip {
        reason: SkipReason::Unsafe,
        why,
    };
    if seen.io_disabled && seen.attempt <= 1 {
        return Step::EnableIo;
    }
    if seen.multi_attach {
        return unsafe_because(
            "it is a Multi-Attach volume: stopping one instance does not stop the others' writes, and replacing it would cut them all off".to_owned(),
        );
    }
    let Some(host) = &seen.host else {
        // Attached to nothing: no writes to lose.
        return Step::Replace;
    };
    if host.root {
        return unsafe_because(format!(
            "it is the root volume of {}: the instance's own status-check rule stops and starts it, and replacing it means replacing the instance",
            host.id
        ));
    }
    if let Some(why) = &host.refusal {
        return unsafe_because(format!("healing it needs {} stopped, but {why}", host.id));
    }
    if !host.running_or_marked {
        return Step::Skip {
            reason: SkipReason::NotNeeded,
            why: format!(
                "{} is {}: no I/O flows, and autoheal does not start what it did not stop",
                host.id, host.state
            ),
        };
    }
    if seen.attempt <= 1 {
        Step::StopStart
    } else {
        Step::Replace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            id: "i-1".to_owned(),
            root: false,
            running_or_marked: true,
            state: "running".to_owned(),
            refusal: None,
        }
    }

    fn seen(attempt: u32, host: Option<Host>) -> Seen {
        Seen {
            attempt,
            io_disabled: false,
            multi_attach: false,
            host,
        }
    }

    fn reason(step: &Step) -> Option<SkipReason> {
        match step {
            Step::Skip { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    #[test]
    fn least_destructive_first_re_enable_io_then_stop_start_then_replace() {
        let disabled = Seen {
            io_disabled: true,
            ..seen(1, Some(host()))
        };
        assert_eq!(plan(&disabled), Step::EnableIo);
        assert_eq!(plan(&seen(1, Some(host()))), Step::StopStart);
        assert_eq!(plan(&seen(2, Some(host()))), Step::Replace);
        assert_eq!(
            plan(&Seen {
                attempt: 2,
                ..disabled
            }),
            Step::Replace
        );
        // Attached to nothing: nothing writes to it, a replacement loses nothing.
        assert_eq!(plan(&seen(1, None)), Step::Replace);
    }

    #[test]
    fn root_multi_attach_and_instances_a_stop_would_harm_are_unsafe() {
        let root = Host {
            root: true,
            ..host()
        };
        let refused = Host {
            refusal: Some("it is a spot instance".to_owned()),
            ..host()
        };
        for attempt in [1, 2] {
            assert_eq!(
                reason(&plan(&seen(attempt, Some(root.clone())))),
                Some(SkipReason::Unsafe)
            );
            assert_eq!(
                reason(&plan(&seen(attempt, Some(refused.clone())))),
                Some(SkipReason::Unsafe)
            );
            let multi = Seen {
                multi_attach: true,
                ..seen(attempt, Some(host()))
            };
            assert_eq!(reason(&plan(&multi)), Some(SkipReason::Unsafe));
        }
        // Re-enabling I/O touches no instance: it stays allowed.
        let root_disabled = Seen {
            io_disabled: true,
            ..seen(1, Some(root))
        };
        assert_eq!(plan(&root_disabled), Step::EnableIo);
    }

    #[test]
    fn an_instance_someone_else_stopped_is_left_alone() {
        let stopped = Host {
            running_or_marked: false,
            state: "stopped".to_owned(),
            ..host()
        };
        for attempt in [1, 2] {
            assert_eq!(
                reason(&plan(&seen(attempt, Some(stopped.clone())))),
                Some(SkipReason::NotNeeded)
            );
        }
    }
}

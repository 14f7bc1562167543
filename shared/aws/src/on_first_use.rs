//! The parts of a layer's healer that are built when an event first needs them.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;

/// One action's part of a layer's healer (the SDK clients it calls), built the first time an
/// event needs it rather than at the container's start.
///
/// A layer heals several services and an event needs one of them, while building a client
/// is not free at a cold start: each SDK crate reads its table of AWS's partitions and
/// compiles their expressions when its first client is built. Built at the start, every
/// client of the layer was paid for before the first event, whichever service it concerned.
/// Clones share the part, built or not.
pub struct OnFirstUse<T>(Arc<Part<T>>);

struct Part<T> {
    sdk: SdkConfig,
    build: Box<dyn Fn(&SdkConfig) -> T + Send + Sync>,
    built: OnceLock<T>,
}

impl<T> OnFirstUse<T> {
    /// A part that `build` makes from `sdk` when [`OnFirstUse::get`] is first called.
    pub fn new(sdk: &SdkConfig, build: impl Fn(&SdkConfig) -> T + Send + Sync + 'static) -> Self {
        OnFirstUse(Arc::new(Part {
            sdk: sdk.clone(),
            build: Box::new(build),
            built: OnceLock::new(),
        }))
    }

    /// The part, built now if no event needed it before.
    pub fn get(&self) -> &T {
        let part = &*self.0;
        part.built.get_or_init(|| (part.build)(&part.sdk))
    }
}

impl<T> Clone for OnFirstUse<T> {
    fn clone(&self) -> Self {
        OnFirstUse(Arc::clone(&self.0))
    }
}

impl<T: fmt::Debug> fmt::Debug for OnFirstUse<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.built.get() {
            Some(part) => part.fmt(formatter),
            None => formatter.write_str("OnFirstUse(not built yet)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_config::{BehaviorVersion, Region};

    use super::*;

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    fn region_of(sdk: &SdkConfig) -> String {
        BUILT.fetch_add(1, Ordering::SeqCst);
        sdk.region()
            .map(|region| region.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn builds_once_on_the_first_use_and_clones_share_it() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let part = OnFirstUse::new(&sdk, region_of);
        let clone = part.clone();
        assert_eq!(
            BUILT.load(Ordering::SeqCst),
            0,
            "nothing is built before it is needed"
        );
        assert_eq!(format!("{part:?}"), "OnFirstUse(not built yet)");

        assert_eq!(clone.get(), "eu-west-1");
        assert_eq!(part.get(), "eu-west-1");
        assert_eq!(clone.get(), "eu-west-1");
        assert_eq!(
            BUILT.load(Ordering::SeqCst),
            1,
            "built once, for every clone"
        );
        assert_eq!(format!("{part:?}"), "\"eu-west-1\"");
    }
}

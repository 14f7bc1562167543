//! Any bytes as a rules file: loading never panics, refuses with a message, or yields rules
//! that hold the loader's own guarantees.

#![no_main]

use std::collections::BTreeSet;

use autoheal_core::RuleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A rules file is text: bytes that are not UTF-8 never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::from_toml(text) {
        Err(error) => {
            assert!(!error.problems.is_empty(), "an error without problems");
            assert!(!error.to_string().trim().is_empty(), "an empty message");
        }
        Ok(rules) => {
            let mut names = BTreeSet::new();
            for rule in rules.rules() {
                assert!(
                    names.insert(rule.name.as_str()),
                    "duplicate rule {}",
                    rule.name
                );
                assert_eq!(rule.action.layer(), rule.layer, "rule {}", rule.name);
                assert!(rule.policy.max_attempts >= 1, "rule {}", rule.name);
            }
        }
    }
});

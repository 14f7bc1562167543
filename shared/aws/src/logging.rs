//! The functions' log, under Lambda's logging controls: JSON lines when `AWS_LAMBDA_LOG_FORMAT`
//! is `JSON` (the template's `LogFormat`), text otherwise; the level from `AWS_LAMBDA_LOG_LEVEL`
//! (the template's `ApplicationLogLevel`), else `RUST_LOG`, else INFO. The same lines as
//! `lambda_runtime`'s default subscriber, with a plain level filter where it has an `EnvFilter`:
//! per-target directives (`RUST_LOG=aws_smithy=warn,info`) would link a regular-expression
//! engine into every function for a choice no deployment makes, and release builds compile out
//! everything below INFO anyway.

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// The most verbose level logged, from the variables `lookup` reads; a value that names no
/// level (Lambda's `FATAL`, or directives) leaves INFO, as `lambda_runtime` does.
pub fn level(lookup: impl Fn(&str) -> Option<String>) -> LevelFilter {
    lookup("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| lookup("RUST_LOG"))
        .and_then(|value| LevelFilter::from_str(value.trim()).ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Whether the log is JSON lines (`AWS_LAMBDA_LOG_FORMAT=JSON`, in any case).
pub fn is_json(lookup: impl Fn(&str) -> Option<String>) -> bool {
    lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.trim().eq_ignore_ascii_case("json"))
}

/// Installs the process's log subscriber, writing to standard output (Lambda's log).
pub fn init() {
    let lookup = |name: &str| std::env::var(name).ok();
    let subscriber = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level(lookup));
    if is_json(lookup) {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::env::lookup_in as lookup;

    #[test]
    fn lambdas_level_comes_first_then_rust_log_then_info() {
        let cases: [(&[(&str, &str)], LevelFilter); 6] = [
            (&[], LevelFilter::INFO),
            (&[("RUST_LOG", "warn")], LevelFilter::WARN),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "debug")],
                LevelFilter::ERROR,
            ),
            (&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")], LevelFilter::DEBUG),
            // Lambda's FATAL, and directives, name no level of tracing's.
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], LevelFilter::INFO),
            (&[("RUST_LOG", "aws_smithy=warn,info")], LevelFilter::INFO),
        ];
        for (pairs, expected) in cases {
            assert_eq!(level(lookup(pairs)), expected, "{pairs:?}");
        }
    }

    #[test]
    fn the_log_is_json_only_when_lambda_says_so() {
        assert!(is_json(lookup(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")])));
        assert!(is_json(lookup(&[("AWS_LAMBDA_LOG_FORMAT", "json")])));
        assert!(!is_json(lookup(&[("AWS_LAMBDA_LOG_FORMAT", "Text")])));
        assert!(!is_json(lookup(&[])));
    }
}

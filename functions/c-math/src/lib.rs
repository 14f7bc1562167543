//! `pow` and `log` for the functions' release binaries, from `libm` (the Rust port of musl's
//! math library), so that a function loads no `libm.so`.
//!
//! The SDK calls these two and no other C math function: `pow` in the adaptive retry mode's
//! rate limiter (`f64::powf`, linked whatever the mode), `log` in its waiters' backoff. Each
//! call made the binary need glibc's `libm.so.6`, which the dynamic loader maps and relocates
//! at every cold start, running its processor-choosing resolvers for the two: about 300 kB of
//! its pages resident in every function's process for two functions it rarely calls.
//! Defined in the binary, the two leave nothing for `libm.so` to resolve, and the link
//! (`--as-needed`) drops it. A test binary that links this crate calls these instead of
//! glibc's too: the same functions, within the last bit of the result.
//!
//! Linked only where a binary names it (`use autoheal_c_math as _;` in each `main.rs`).

#![allow(unsafe_code)] // `#[unsafe(no_mangle)]`: the symbol's name is the point; see above.

/// C's `double pow(double, double)`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(base: f64, exponent: f64) -> f64 {
    libm::pow(base, exponent)
}

/// C's `double log(double)`: the natural logarithm.
#[unsafe(no_mangle)]
pub extern "C" fn log(value: f64) -> f64 {
    libm::log(value)
}

#[cfg(test)]
mod tests {
    use super::{log, pow};

    #[test]
    fn pow_is_exact_where_the_result_is_representable() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(2.0, -2.0), 0.25);
        assert_eq!(pow(27.0, 1.0 / 3.0), 3.0);
        assert_eq!(pow(2.0, 0.5), std::f64::consts::SQRT_2);
        assert!(pow(-8.0, 0.5).is_nan());
    }

    #[test]
    fn log_is_the_natural_logarithm() {
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(std::f64::consts::E), 1.0);
        assert_eq!(log(1024.0) / log(2.0), 10.0);
        assert_eq!(log(0.0), f64::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
    }
}

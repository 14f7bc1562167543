//! The platform layer's rules against the emulator.

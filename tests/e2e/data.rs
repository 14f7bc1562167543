//! The data layer's rules against the emulator.

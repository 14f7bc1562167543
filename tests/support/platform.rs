//! Fixtures of the platform layer in the emulator.

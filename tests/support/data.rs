//! Fixtures of the data layer in the emulator.

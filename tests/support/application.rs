//! Fixtures of the application layer in the emulator.

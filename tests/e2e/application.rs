//! The application layer's rules against the emulator.

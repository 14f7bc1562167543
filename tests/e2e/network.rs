//! The network layer's rules against the emulator.

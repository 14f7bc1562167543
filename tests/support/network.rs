//! Fixtures of the network layer in the emulator.

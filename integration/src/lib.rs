//! Helpers for the integration tests: they run the built binaries for real, as root.

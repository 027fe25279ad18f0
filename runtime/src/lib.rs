//! capsa: a low-level OCI container runtime.

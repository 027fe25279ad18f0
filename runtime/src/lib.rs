//! capsa: a low-level OCI container runtime.
pub mod seccomp;

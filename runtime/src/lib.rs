//! capsa: a low-level OCI container runtime.
//!
//! The modules map the OCI runtime spec's sections one to one; `process` holds the
//! container's init sequence (`parent::create` and `child::init`, read side by side).

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod cli;
pub mod console;
pub mod error;
pub mod exe_guard;
pub mod hooks;
pub mod lifecycle;
pub mod logging;
pub mod lsm;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod syscall;
pub mod user;
pub mod utils;

pub use error::{Error, Result};

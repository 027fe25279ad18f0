//! capsa: a low-level OCI container runtime.
//!
//! The modules map the OCI runtime spec's sections one to one; `process` holds the
//! container's init sequence (`parent::create` and `child::init`, read side by side) and
//! `container` the lifecycle of an existing container. Every raw syscall goes through
//! `syscall`, the only module allowed `unsafe`.
//!
//! The public surface is what the `capsa` binary and the tests use: the command line,
//! the exe seal, config parsing and checking (the fuzz target), seccomp (kernel tests).

#![deny(unsafe_code)]

mod capabilities;
mod cgroups;
mod channel;
mod checkpoint;
pub mod cli;
mod console;
mod container;
mod error;
pub mod exe_guard;
mod hooks;
mod logging;
mod lsm;
mod namespaces;
mod process;
mod rlimits;
mod rootfs;
mod rootless;
pub mod seccomp;
pub mod spec;
mod state;
mod syscall;
mod user;
mod utils;

pub use error::{Error, Result};
pub use process::check_config;

//! The CRI test harness: the environment hack/cri-env.sh made, a blocking
//! CRI client with a time limit on every call, pods and containers as a
//! kubelet builds them, the leak check, the streaming (websocket) client and
//! cgroup reads.

pub mod cgroup;
pub mod client;
pub mod env;
pub mod leaks;
pub mod pod;
pub mod poll;
pub mod stream;

pub use client::Cri;
pub use env::env;
pub use pod::{Ctr, Pod, PodOpts};
pub use poll::eventually;

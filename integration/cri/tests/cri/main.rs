//! capsa through containerd's CRI plugin, driven the way a kubelet drives it:
//! pods, containers, exec, attach, logs, stats, updates and teardown, over the
//! CRI v1 gRPC API on containerd's socket, with host-network pods.
//!
//! Run by hack/cri-test.sh, which starts a private containerd with the CRI
//! plugin (hack/cri-env.sh) and runs every test once per runtime handler
//! (CRI_TEST_HANDLER: `capsa` = our shim driving capsa, `runc` = the Go runc
//! shim driving capsa). Plain `cargo test` skips them (`#[ignore]`).
//!
//! Every test makes its own pods (unique names, cgroup parent, log dir) and
//! ends with `Pod::finish`: RemovePodSandbox, then nothing of the pod may be
//! left (processes, mounts, cgroups, shim, runtime and containerd state).

mod harness;

mod bench;
mod exec;
mod lifecycle;
mod logs;
mod namespaces;
mod resources;
mod security;
mod stress;

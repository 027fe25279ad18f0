//! capsa-image: layered OCI images to runtime bundles. A content-addressed store of blobs and
//! unpacked layers; bundles whose rootfs is an overlay of shared layers plus one writable layer
//! per container; commit of that layer back into an image.
//!
//! `unsafe` lives only in `sys` (the crate's raw syscalls, each block with its SAFETY note);
//! path resolution, mountinfo and passwd parsing come from capsa-linux.
#![deny(unsafe_code)]
pub mod build;
pub mod bundle;
pub mod commit;
pub mod compress;
pub mod copy;
pub mod digest;
pub mod error;
pub mod export;
pub mod gc;
pub mod import;
pub mod info;
pub mod mount_targets;
pub mod oci;
#[cfg(feature = "registry")]
pub mod pull;
#[cfg(feature = "registry")]
pub mod push;
#[cfg(feature = "registry")]
pub mod registry;
pub mod runtime_spec;
pub mod size;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod unpack;
pub mod user;

//! config.json: oci-spec's parse and every check `capsa create` makes on the config before it
//! touches the system (`capsa::check_config`: spec::validate, the namespace plan, LSM,
//! rlimits, capabilities, the seccomp compiler). Invariant: any input gives Ok or an error, never a panic; an error's
//! message is not empty.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;

/// A bundle dir with an empty `rootfs`, made once per process (checks only stat it).
fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("capsa-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("create the fuzz bundle dir");
        dir
    })
}

fn named<E: std::fmt::Display>(r: Result<impl Sized, E>) {
    if let Err(e) = r {
        assert!(!e.to_string().is_empty(), "an error without a message");
    }
}

fn checks(spec: &Spec) {
    let dir = bundle_dir();
    // as Bundle::load: root.path is relative to the bundle (or absolute)
    if let Some(root) = spec.root() {
        named(capsa::check_config(spec, &dir.join(root.path())));
    }
    named(capsa::check_config(spec, &dir.join("rootfs")));
}

fuzz_target!(|data: &[u8]| {
    match capsa::spec::parse(data, Path::new("config.json")) {
        Ok(spec) => checks(&spec),
        Err(e) => assert!(e.to_string().contains("config.json"), "{e}"),
    }
});

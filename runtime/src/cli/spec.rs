//! `spec [--bundle DIR] [--rootless]`: write a default config.json, as `runc spec` does.

use std::path::PathBuf;

use capsa_defaults::runtime_config as default_spec;
use clap::Args;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Where to write config.json (default: the current directory)
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// A config for running as an unprivileged user
    #[arg(long)]
    rootless: bool,
}

pub fn run(a: &SpecArgs) -> anyhow::Result<()> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = default_spec();
    if !crate::cgroups::is_unified() {
        without_cgroup_namespace(&mut spec);
    }
    if a.rootless {
        make_rootless(
            &mut spec,
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
    }
    crate::utils::write_atomic(&path, serde_json::to_string_pretty(&spec)?.as_bytes())?;
    Ok(())
}

/// runc gives the container a cgroup namespace of its own only on a cgroup v2 host; on a
/// v1 or hybrid one the container sees the host's cgroup paths, which tools (and runc's
/// own tests) expect there.
fn without_cgroup_namespace(spec: &mut Value) {
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        nss.retain(|n| n["type"] != "cgroup");
    }
}

/// runc's rootless changes (libcontainer/specconv ToRootless): a user namespace mapping
/// the caller's uid and gid to 0, no network namespace (an unprivileged user could not
/// give it a link), /sys bound from the host (sysfs needs a network namespace of our own),
/// no uid=/gid= mount options (those ids are not mapped), no linux.resources (no cgroup is
/// delegated by default). The cgroup namespace stays: a user namespace may make one.
pub fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(l) = linux.as_object_mut() {
        l.remove("resources");
    }
    linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    if let Some(nss) = linux["namespaces"].as_array_mut() {
        nss.retain(|n| n["type"] != "network" && n["type"] != "user");
        nss.push(json!({ "type": "user" }));
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
            // get_mut, not indexing: `m["options"]` would add `"options": null`.
            if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
                opts.retain(|o| {
                    let o = o.as_str().unwrap_or_default();
                    !o.starts_with("uid=") && !o.starts_with("gid=")
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_with_oci_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec()).unwrap();
        assert_eq!(
            s.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "sh"
        );
        let mut r = default_spec();
        make_rootless(&mut r, 1000, 1000);
        let text = r.to_string();
        assert!(
            !text.contains("gid=5") && !text.contains("\"network\""),
            "{text}"
        );
        assert!(r["linux"].get("resources").is_none());
        assert!(!text.contains("null"), "{text}");
        let s: oci_spec::runtime::Spec = serde_json::from_value(r).unwrap();
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
        let nss = linux.namespaces().as_ref().unwrap();
        assert_eq!(
            nss.last().unwrap().typ(),
            oci_spec::runtime::LinuxNamespaceType::User
        );
    }
}

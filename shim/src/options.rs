//! Runtime options containerd attaches to a task: the runc shim's
//! `containerd.runc.v1.Options` (BinaryName, Root, SystemdCgroup, ...) or the
//! generic `runtimeoptions.v1.Options`, whose ConfigPath names a TOML file with
//! the same keys (what `ctr run --runtime-config-path` sends). Stored in the
//! bundle so that `shim delete` can find the runtime after a crash.

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::{well_known_types::any::Any, Message};
use containerd_shim::protos::shim::oci::{CheckpointOptions, Options as RuncOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const OPTIONS_FILE: &str = "capsa-shim-options.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuntimeOptions {
    pub binary_name: String,
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
}

/// containerd's checkpoint options (`containerd.runc.v1.CheckpointOptions`, what `ctr
/// task checkpoint` sends) as the runtime's flags; none: a checkpoint that leaves the
/// container running, images in the request's path.
pub fn checkpoint_options(any: Option<&Any>) -> Result<crate::runtime::CheckpointOpts> {
    let mut o = crate::runtime::CheckpointOpts {
        leave_running: true,
        ..Default::default()
    };
    let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
        return Ok(o);
    };
    let url = any.type_url.as_str();
    if !url.ends_with("containerd.runc.v1.CheckpointOptions") {
        return Err(Error::InvalidArgument(format!(
            "unsupported checkpoint options type {url:?}"
        )));
    }
    let c = CheckpointOptions::parse_from_bytes(&any.value)
        .map_err(|e| Error::InvalidArgument(format!("decode checkpoint options {url}: {e}")))?;
    o.leave_running = !c.exit;
    o.tcp_established = c.open_tcp;
    o.ext_unix_sk = c.external_unix_sockets;
    o.shell_job = c.terminal;
    o.file_locks = c.file_locks;
    o.empty_ns = c.empty_namespaces;
    o.cgroups_mode = c.cgroups_mode;
    o.image_path = PathBuf::from(c.image_path);
    o.work_path = PathBuf::from(c.work_path);
    Ok(o)
}

impl RuntimeOptions {
    pub fn from_any(any: Option<&Any>) -> Result<Self> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
            return Ok(Self::default());
        };
        let url = any.type_url.as_str();
        if url.ends_with("containerd.runc.v1.Options") {
            let o = RuncOptions::parse_from_bytes(&any.value).map_err(|e| {
                Error::InvalidArgument(format!("decode runtime options {url}: {e}"))
            })?;
            Ok(Self {
                binary_name: o.binary_name,
                root: o.root,
                systemd_cgroup: o.systemd_cgroup,
                no_pivot_root: o.no_pivot_root,
                no_new_keyring: o.no_new_keyring,
            })
        } else if url.ends_with("runtimeoptions.v1.Options") {
            match config_path(&any.value)? {
                Some(path) => Self::from_toml_file(Path::new(&path)),
                None => Ok(Self::default()),
            }
        } else {
            Err(Error::InvalidArgument(format!(
                "unsupported runtime options type {url:?}"
            )))
        }
    }

    /// Reads the flat `Key = value` TOML the CRI plugin also uses for runc.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io(format!("read runtime config {}", path.display())))?;
        let mut o = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::InvalidArgument(format!(
                    "{}:{}: expected `Key = value`",
                    path.display(),
                    n + 1
                )));
            };
            let value = value.trim().trim_matches('"').to_string();
            let flag = || value == "true";
            match key.trim() {
                "BinaryName" => o.binary_name = value.clone(),
                "Root" => o.root = value.clone(),
                "SystemdCgroup" => o.systemd_cgroup = flag(),
                "NoPivotRoot" => o.no_pivot_root = flag(),
                "NoNewKeyring" => o.no_new_keyring = flag(),
                _ => {} // other runc options have no meaning for this shim
            }
        }
        Ok(o)
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::util::write_atomic(&bundle.join(OPTIONS_FILE), &data)
    }

    pub fn load(bundle: &Path) -> Self {
        std::fs::read(bundle.join(OPTIONS_FILE))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// The runtime binary: BinaryName (a path, or a name looked up on PATH),
    /// else `capsa` next to the shim, else `capsa` on PATH.
    pub fn binary(&self) -> Result<PathBuf> {
        if !self.binary_name.is_empty() {
            return lookup(&self.binary_name);
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            let beside = dir.join("capsa");
            if is_executable(&beside) {
                return Ok(beside);
            }
        }
        lookup("capsa")
    }

    pub fn root(&self, namespace: &str) -> PathBuf {
        if self.root.is_empty() {
            Path::new("/run/containerd/capsa").join(namespace)
        } else {
            Path::new(&self.root).join(namespace)
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn lookup(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(Error::NotFound(format!(
                "runtime binary {name} not found or not executable"
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| Error::NotFound(format!("runtime binary {name:?} not found on PATH")))
}

/// Field 2 (`config_path`) of `runtimeoptions.v1.Options`, decoded by hand:
/// the message is two strings and not among the generated types.
fn config_path(mut buf: &[u8]) -> Result<Option<String>> {
    fn varint(buf: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf
                .split_first()
                .ok_or_else(|| Error::InvalidArgument("truncated runtime options".into()))?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::InvalidArgument(
            "bad varint in runtime options".into(),
        ))
    }
    let mut found = None;
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        if tag & 7 != 2 {
            return Err(Error::InvalidArgument(
                "unexpected field in runtime options".into(),
            ));
        }
        let len = usize::try_from(varint(&mut buf)?).unwrap_or(usize::MAX);
        if len > buf.len() {
            return Err(Error::InvalidArgument("truncated runtime options".into()));
        }
        let (field, rest) = buf.split_at(len);
        buf = rest;
        if tag >> 3 == 2 {
            found = Some(String::from_utf8_lossy(field).into_owned());
        }
    }
    Ok(found.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_options_become_runtime_flags() {
        let o = checkpoint_options(None).unwrap();
        assert!(o.leave_running, "no options: the container keeps running");
        let c = CheckpointOptions {
            exit: true,
            open_tcp: true,
            terminal: true,
            image_path: "/img".into(),
            empty_namespaces: vec!["network".into()],
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.CheckpointOptions".into(),
            value: c.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let o = checkpoint_options(Some(&any)).unwrap();
        assert!(!o.leave_running && o.tcp_established && o.shell_job);
        assert!(!o.ext_unix_sk && !o.file_locks);
        assert_eq!(o.image_path, Path::new("/img"));
        assert_eq!(o.empty_ns, ["network"]);
        let bad = Any {
            type_url: "x.Other".into(),
            ..Default::default()
        };
        let e = checkpoint_options(Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("x.Other"), "{e}");
    }

    #[test]
    fn runtimeoptions_config_path_is_decoded() {
        // type_url = "x" (field 1), config_path = "/etc/r.toml" (field 2)
        let mut b = vec![0x0a, 1, b'x', 0x12, 11];
        b.extend_from_slice(b"/etc/r.toml");
        assert_eq!(config_path(&b).unwrap().as_deref(), Some("/etc/r.toml"));
        assert!(config_path(&[0x12, 5, b'a']).is_err());
    }

    #[test]
    fn toml_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.toml");
        std::fs::write(
            &f,
            "# c\nBinaryName = \"/usr/bin/runc\"\nSystemdCgroup = true\n",
        )
        .unwrap();
        let o = RuntimeOptions::from_toml_file(&f).unwrap();
        assert_eq!(o.binary_name, "/usr/bin/runc");
        assert!(o.systemd_cgroup);
        std::fs::write(&f, "nonsense\n").unwrap();
        assert!(RuntimeOptions::from_toml_file(&f).is_err());
    }
}

//! Writing a new user namespace's uid/gid maps from the parent.

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::{Error, Result};

fn format(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

pub fn write(pid: i32, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (file, maps, field) in [
        ("uid_map", linux.uid_mappings(), "linux.uidMappings"),
        ("gid_map", linux.gid_mappings(), "linux.gidMappings"),
    ] {
        let Some(maps) = maps.as_deref().filter(|m| !m.is_empty()) else {
            continue;
        };
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, format(maps))
            .map_err(|e| Error::Other(format!("{field}: write {path}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines() {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        )
        .unwrap();
        assert_eq!(format(&m), "0 1000 1\n1 100000 65536\n");
    }
}

//! `exec --cgroup`: the sub-cgroups of the container's cgroup an exec'd process joins,
//! in runc's format: `PATH` (every hierarchy) or `CTRL[,CTRL...]:PATH` (repeatable).

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubCgroups {
    /// The same sub-cgroup in every hierarchy (the only form on cgroup v2).
    All(PathBuf),
    /// A sub-cgroup per controller (cgroup v1); `""` is the cgroup2 hierarchy.
    PerController(Vec<(String, PathBuf)>),
}

impl SubCgroups {
    /// Parse the `--cgroup` arguments; `None` when there are none.
    pub fn parse(args: &[String]) -> Result<Option<SubCgroups>> {
        let bad = |a: &str, why: &str| Error::Other(format!("--cgroup {a:?}: {why}"));
        let mut per = Vec::new();
        for a in args {
            match a.split_once(':') {
                None if args.len() == 1 => return Ok(Some(SubCgroups::All(relative(a)?))),
                None => return Err(bad(a, "missing the <controller>: prefix")),
                Some((_, p)) if p.contains(':') => return Err(bad(a, "too many ':'")),
                Some((ctrls, p)) => {
                    for c in ctrls.split(',') {
                        per.push((c.to_string(), relative(p)?));
                    }
                }
            }
        }
        Ok((!per.is_empty()).then_some(SubCgroups::PerController(per)))
    }

    /// The sub-path for a hierarchy carrying `controllers` (empty: cgroup2), if any.
    pub fn for_controllers(&self, controllers: &[String]) -> Option<&Path> {
        match self {
            SubCgroups::All(p) => Some(p),
            SubCgroups::PerController(list) => list
                .iter()
                .find(|(c, _)| {
                    if c.is_empty() {
                        controllers.is_empty()
                    } else {
                        controllers.iter().any(|x| x == c)
                    }
                })
                .map(|(_, p)| p.as_path()),
        }
    }
}

/// The error of moving `pid` into a sub-cgroup, in runc's words ("adding pid N to
/// cgroups: ...: no such file or directory"), which scripts match.
pub fn join_error(pid: i32, procs: &Path, e: &std::io::Error) -> Error {
    let why = e
        .raw_os_error()
        .map(|n| nix::errno::Errno::from_raw(n).desc().to_lowercase())
        .unwrap_or_else(|| e.to_string());
    Error::Cgroup(format!(
        "--cgroup: adding pid {pid} to cgroups: {}: {why}",
        procs.display()
    ))
}

/// A sub-path that stays inside the container's cgroup ("/" is the cgroup itself).
fn relative(p: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir if out.pop() => {}
            _ => {
                return Err(Error::Other(format!(
                    "--cgroup: {p} is not a sub cgroup path"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn forms() {
        assert_eq!(SubCgroups::parse(&[]).unwrap(), None);
        assert_eq!(
            SubCgroups::parse(&args(&["/"])).unwrap(),
            Some(SubCgroups::All(PathBuf::new()))
        );
        assert_eq!(
            SubCgroups::parse(&args(&["a/../b"])).unwrap(),
            Some(SubCgroups::All("b".into()))
        );
        let per = SubCgroups::parse(&args(&["memory:m", "cpu,cpuacct:c"]))
            .unwrap()
            .unwrap();
        let cpu = ["cpu".to_string(), "cpuacct".to_string()];
        assert_eq!(per.for_controllers(&cpu), Some(Path::new("c")));
        assert_eq!(
            per.for_controllers(&["memory".into()]),
            Some(Path::new("m"))
        );
        assert_eq!(per.for_controllers(&["pids".into()]), None);
        assert_eq!(per.for_controllers(&[]), None);
    }

    #[test]
    fn refused() {
        for bad in [&[".."][..], &["../x"], &["a", "b"], &["a:b:c"]] {
            let e = SubCgroups::parse(&args(bad)).unwrap_err().to_string();
            assert!(e.contains("--cgroup"), "{bad:?}: {e}");
        }
        let e = SubCgroups::parse(&args(&[".."])).unwrap_err().to_string();
        assert!(e.contains(".. is not a sub cgroup path"), "{e}");
    }
}

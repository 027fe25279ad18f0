//! What a removed pod may not leave behind: processes (its containers', its
//! shim), mounts, cgroups, the runtime's and containerd's state directories.

use std::path::PathBuf;

/// Processes of the pod: a shim started with `-id <shim_id>` (the sandbox id:
/// both shims group a pod in one process), or anything in a cgroup below
/// `cgroup_parent`.
fn processes(shim_id: &str, cgroup_parent: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_shim = args
            .windows(2)
            .any(|w| w[0] == b"-id" && w[1] == shim_id.as_bytes());
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let in_pod = cg.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p.starts_with(&format!("{cgroup_parent}/")))
        });
        if is_shim || in_pod {
            let shown: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            found.push(format!("process {name}: {}", shown.join(" ").trim()));
        }
    }
    found
}

fn mounts(ids: &[String]) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .map(|l| format!("mount {l}"))
        .collect()
}

fn state_dirs(ids: &[String]) -> Vec<String> {
    let env = super::env();
    let ns = "k8s.io";
    let mut dirs: Vec<PathBuf> = Vec::new();
    for id in ids {
        for root in &env.runtime_roots {
            dirs.push(root.join(ns).join(id));
        }
        dirs.push(
            env.dir
                .join("state/io.containerd.runtime.v2.task")
                .join(ns)
                .join(id),
        );
        for kind in ["sandboxes", "containers"] {
            dirs.push(
                env.dir
                    .join("root/io.containerd.grpc.v1.cri")
                    .join(kind)
                    .join(id),
            );
            dirs.push(
                env.dir
                    .join("state/io.containerd.grpc.v1.cri")
                    .join(kind)
                    .join(id),
            );
        }
    }
    dirs.into_iter()
        .filter(|d| d.exists())
        .map(|d| format!("state dir {}", d.display()))
        .collect()
}

fn cgroups(cgroup_parent: &str) -> Vec<String> {
    super::cgroup::children(cgroup_parent)
        .into_iter()
        .map(|d| format!("cgroup {}", d.display()))
        .collect()
}

/// Everything of a removed pod still there: `sandbox` and `containers` are
/// its ids, `cgroup_parent` the parent it gave its containers.
pub fn leftovers(sandbox: &str, containers: &[String], cgroup_parent: &str) -> Vec<String> {
    let mut ids = vec![sandbox.to_string()];
    ids.extend(containers.iter().cloned());
    let mut all = processes(sandbox, cgroup_parent);
    all.extend(mounts(&ids));
    all.extend(cgroups(cgroup_parent));
    all.extend(state_dirs(&ids));
    all
}

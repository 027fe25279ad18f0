//! What a container can leave behind on the host (mounts, processes), found
//! and removed by the test guard, and asserted absent after a failed create.

use std::fs;
use std::path::Path;

/// Mount points in our mount namespace at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(unescape)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Lazily unmounts everything under `dir`. Best effort.
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Every pid in /proc but our own.
fn other_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .collect()
}

/// Processes (other than ourselves) whose command line or environment
/// contains `tag` or whose cgroup path contains `cgroup_name`: the runtime's
/// init, the container's processes and the hooks of one test.
pub fn processes(tag: &str, cgroup_name: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for pid in other_pids() {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // A zombie has left its cgroup and memory behind already; it only waits to be reaped.
        let zombie = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(true);
        if zombie {
            continue;
        }
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let in_env = environ.windows(tag.len()).any(|w| w == tag.as_bytes());
        if cmdline.contains(tag) || in_env || cgroup.contains(cgroup_name) {
            out.push((pid, cmdline));
        }
    }
    out
}

/// SIGKILLs the processes [`processes`] finds. Best effort.
pub fn kill_processes(tag: &str, cgroup_name: &str) {
    for (pid, _) in processes(tag, cgroup_name) {
        // SAFETY: kill(2) of a process that belongs to this test (by tag or cgroup).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Everything of one container still on the host, by kind.
#[derive(Debug, Default)]
pub struct Found {
    /// `<root>/<id>` (a state dir, or a half-made one without state.json).
    pub state_dir: Option<std::path::PathBuf>,
    /// The container's cgroup in any hierarchy (v1 controllers, the unified one).
    pub cgroups: Vec<std::path::PathBuf>,
    /// Mounts under the test's temp dir (bundles, rootfs) in our mount namespace.
    pub mounts: Vec<String>,
    /// Processes of the test: by tag in cmdline/environment or by cgroup.
    pub processes: Vec<(i32, String)>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.state_dir.is_none()
            && self.cgroups.is_empty()
            && self.mounts.is_empty()
            && self.processes.is_empty()
    }
}

/// What is left of container `id` (bundle `b`) of `ctx`.
pub fn of_container(ctx: &crate::Ctx, id: &str, b: &crate::Bundle) -> Found {
    let state_dir = ctx.root.join(id);
    Found {
        state_dir: state_dir.exists().then_some(state_dir),
        cgroups: crate::cgroup::existing_dirs(&b.cgroups_path()),
        mounts: mounts_under(&ctx.dir),
        processes: processes(&ctx.tag, ctx.cg_parent.trim_start_matches('/')),
    }
}

/// The cgroups below `parent` (a test's own parent) in any hierarchy: what every
/// container of a test left.
pub fn cgroups_below(parent: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for top in crate::cgroup::existing_dirs(parent) {
        if let Ok(rd) = fs::read_dir(&top) {
            out.extend(
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Processes (other than ourselves) holding a descriptor on a path under `dir`: a leaked
/// runtime process keeps its state dir or fifo open.
pub fn fds_under(dir: &Path) -> Vec<(i32, String)> {
    let prefix = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for pid in other_pids() {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if t.starts_with(&prefix) {
                    out.push((pid, t.into_owned()));
                }
            }
        }
    }
    out
}

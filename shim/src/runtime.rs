//! The runtime binary driven through the runc command line. Every call passes
//! `--root`, `--log <bundle>/log.json --log-format json`; on failure the error
//! is the runtime's own last `"level":"error"` log line written by that call
//! (else its stderr), so the ctr user reads what the runtime said.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::reaper;

#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub systemd_cgroup: bool,
}

/// The three standard streams a create/exec hands to the container process.
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

fn stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map(Stdio::from).unwrap_or_else(Stdio::null)
}

pub struct CreateOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// `checkpoint`'s flags (containerd's `CheckpointOptions`).
#[derive(Debug, Default, Clone)]
pub struct CheckpointOpts {
    pub image_path: PathBuf,
    pub work_path: PathBuf,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub empty_ns: Vec<String>,
    pub cgroups_mode: String,
}

/// `restore`'s flags: the images and where CRIU works.
pub struct RestoreOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub image_path: &'a Path,
    pub work_path: Option<&'a Path>,
    pub no_pivot: bool,
}

impl Runtime {
    /// The runtime for a container of `bundle`, as the options choose it.
    pub fn for_bundle(
        opts: &crate::options::RuntimeOptions,
        namespace: &str,
        bundle: &Path,
    ) -> Result<Self> {
        Ok(Runtime {
            binary: opts.binary()?,
            root: opts.root(namespace),
            log: bundle.join("log.json"),
            systemd_cgroup: opts.systemd_cgroup,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            c.arg("--systemd-cgroup");
        }
        c
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The last error the runtime logged after byte `from` of its log.
    fn logged_error(&self, from: u64) -> Option<String> {
        let mut f = File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        text.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error")
            .find_map(|v| v["msg"].as_str().map(str::to_string))
    }

    /// Runs `cmd` to completion through the reaper; returns its stdout.
    fn run(&self, what: &str, mut cmd: Command, input: Option<&[u8]>) -> Result<Vec<u8>> {
        let from = self.log_len();
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let since = reaper::mark();
        let mut child = cmd
            .spawn()
            .map_err(Error::io(format!("run {} {what}", self.binary.display())))?;
        let pid = child.id() as i32;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(data);
        }
        let mut out = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut out);
        }
        let mut err = Vec::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_end(&mut err);
        }
        // The reaper thread collects the child; std's Child is never waited on.
        let status = reaper::wait(pid, since);
        if status == 0 {
            return Ok(out);
        }
        let msg = self
            .logged_error(from)
            .or_else(|| {
                let s = String::from_utf8_lossy(&err).trim().to_string();
                (!s.is_empty()).then_some(s)
            })
            .unwrap_or_else(|| format!("exit status {status}"));
        if msg.contains("does not exist") || msg.contains("not exist") {
            return Err(Error::NotFound(msg));
        }
        Err(Error::Runtime(msg))
    }

    fn simple(&self, what: &str, args: &[&str]) -> Result<Vec<u8>> {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.run(what, c, None)
    }

    pub fn create(&self, id: &str, o: &CreateOpts, io: ChildStdio) -> Result<()> {
        let mut c = self.command();
        c.arg("create")
            .arg("--bundle")
            .arg(o.bundle)
            .arg("--pid-file")
            .arg(o.pid_file);
        if let Some(s) = o.console_socket {
            c.arg("--console-socket").arg(s);
        }
        if o.no_pivot {
            c.arg("--no-pivot");
        }
        if o.no_new_keyring {
            c.arg("--no-new-keyring");
        }
        c.arg(id)
            .stdin(stdio(io.stdin))
            .stdout(stdio(io.stdout))
            .stderr(stdio(io.stderr));
        self.run("create", c, None).map(drop)
    }

    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        io: ChildStdio,
    ) -> Result<()> {
        let mut c = self.command();
        c.arg("exec")
            .arg("--process")
            .arg(process)
            .arg("--detach")
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id)
            .stdin(stdio(io.stdin))
            .stdout(stdio(io.stdout))
            .stderr(stdio(io.stderr));
        self.run("exec", c, None).map(drop)
    }

    /// `restore --detach` from CRIU images: the restored init's stdio is `io` (CRIU
    /// hands the new pipes to the restored process in place of the dumped ones).
    pub fn restore(&self, id: &str, o: &RestoreOpts, io: ChildStdio) -> Result<()> {
        let mut c = self.command();
        c.arg("restore")
            .arg("--detach")
            .arg("--no-subreaper")
            .arg("--bundle")
            .arg(o.bundle)
            .arg("--pid-file")
            .arg(o.pid_file)
            .arg("--image-path")
            .arg(o.image_path);
        if let Some(w) = o.work_path {
            c.arg("--work-path").arg(w);
        }
        if let Some(s) = o.console_socket {
            c.arg("--console-socket").arg(s);
        }
        if o.no_pivot {
            c.arg("--no-pivot");
        }
        c.arg(id)
            .stdin(stdio(io.stdin))
            .stdout(stdio(io.stdout))
            .stderr(stdio(io.stderr));
        self.run("restore", c, None).map(drop)
    }

    pub fn checkpoint(&self, id: &str, o: &CheckpointOpts) -> Result<()> {
        let mut c = self.command();
        c.arg("checkpoint")
            .arg("--image-path")
            .arg(&o.image_path)
            .arg("--work-path")
            .arg(&o.work_path);
        for (on, flag) in [
            (o.leave_running, "--leave-running"),
            (o.tcp_established, "--tcp-established"),
            (o.ext_unix_sk, "--ext-unix-sk"),
            (o.shell_job, "--shell-job"),
            (o.file_locks, "--file-locks"),
        ] {
            if on {
                c.arg(flag);
            }
        }
        for ns in &o.empty_ns {
            c.arg("--empty-ns").arg(ns);
        }
        if !o.cgroups_mode.is_empty() {
            c.arg("--manage-cgroups-mode").arg(&o.cgroups_mode);
        }
        c.arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.run("checkpoint", c, None).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.simple("start", &["start", id]).map(drop)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.simple("kill", &args).map(drop)
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let args: &[&str] = if force {
            &["delete", "--force", id]
        } else {
            &["delete", id]
        };
        self.simple("delete", args).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.simple("pause", &["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.simple("resume", &["resume", id]).map(drop)
    }

    /// `update --resources -` with the OCI LinuxResources JSON on stdin.
    pub fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        let mut c = self.command();
        c.args(["update", "--resources", "-", id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.run("update", c, Some(resources_json)).map(drop)
    }

    /// The pids in the container, from `ps --format json`.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.simple("ps", &["ps", "--format", "json", id])?;
        serde_json::from_slice::<Option<Vec<u32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Runtime(format!("runtime ps output: {e}")))
    }
}

/// Reads the pid file the runtime wrote for `what` ("container ID", "exec E
/// of container ID"). A pid that is not above 0 (an empty file, `0`, a
/// negative number, garbage) is a runtime bug: it is refused here, so the
/// shim never waits on it (`waitpid(0)` would be any child of its group, and
/// a watch on pid 0 never fires: the exec would hang until the pod stops).
pub fn read_pid(path: &Path, what: &str) -> Result<i32> {
    let s = std::fs::read_to_string(path).map_err(Error::io(format!(
        "read the pid file of {what} ({})",
        path.display()
    )))?;
    parse_pid(&s).ok_or_else(|| {
        Error::Runtime(format!(
            "the runtime reported an invalid pid {:?} for {what} (pid file {}): refusing it",
            s.trim(),
            path.display()
        ))
    })
}

/// The pid in a pid file's text, if it is a number above 0.
fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pids_above_zero_are_taken() {
        assert_eq!(parse_pid("4242"), Some(4242));
        assert_eq!(parse_pid("17\n"), Some(17));
        for bad in ["", "\n", "0", "-1", "-4242", "abc", "12abc", "99999999999"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_pid_file_is_an_error_naming_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("exec.pid");
        for (text, shown) in [("0", "\"0\""), ("", "\"\""), ("-3", "\"-3\"")] {
            std::fs::write(&pf, text).unwrap();
            let e = read_pid(&pf, "exec e1 of container c1").unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Runtime(_)), "{msg}");
            assert!(msg.contains("exec e1 of container c1"), "{msg}");
            assert!(msg.contains(&format!("invalid pid {shown}")), "{msg}");
        }
        std::fs::write(&pf, "123").unwrap();
        assert_eq!(read_pid(&pf, "container c1").unwrap(), 123);
        let missing = read_pid(&dir.path().join("none.pid"), "container c2").unwrap_err();
        assert!(missing.to_string().contains("container c2"), "{missing}");
    }
}

//! The runtime binary under test and the results of running it.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::poll::HANG_GUARD;

/// Which runtime is being tested; only used where runtimes legitimately differ
/// (error wording, features runc lacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Capsa,
    Runc,
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub kind: Kind,
}

impl Runtime {
    /// `CAPSA_RUNTIME`, else `<workspace>/target/release/capsa`.
    pub fn from_env() -> Runtime {
        let path = match std::env::var_os("CAPSA_RUNTIME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => workspace_dir().join("target/release/capsa"),
        };
        assert!(
            path.is_file(),
            "runtime binary {} not found: build it (cargo build --release) or set CAPSA_RUNTIME",
            path.display()
        );
        let name = path
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("")
            .to_string();
        let kind = if name.starts_with("capsa") {
            Kind::Capsa
        } else if name.starts_with("runc") {
            Kind::Runc
        } else {
            Kind::Other(name)
        };
        Runtime { path, kind }
    }

    pub fn is_capsa(&self) -> bool {
        self.kind == Kind::Capsa
    }

    /// True (and prints why the test is skipped) when the runtime is runc and
    /// `feature` is one runc 1.1 lacks without saying so in `features`.
    pub fn runc_lacks(&self, feature: &str) -> bool {
        if self.kind == Kind::Runc {
            crate::skip(&format!("runc 1.1 lacks {feature}"));
            return true;
        }
        false
    }

    /// True when the runtime is runc, whose 1.1 releases deviate from the
    /// spec on the point `what` names: the test then tolerates runc's
    /// behaviour (printing the deviation) and holds every other runtime to
    /// the spec.
    pub fn runc_deviation(&self, what: &str) -> bool {
        if self.kind == Kind::Runc {
            crate::report("KNOWN RUNC DEVIATION", what);
            return true;
        }
        false
    }

    /// runc 1.1's `start` returns once its init has read exec.fifo, before that init has
    /// exec'd the container's process: for a moment PID 1 is still `runc:[2:INIT]` (Go:
    /// several threads, and exit status 2 when a SIGTERM reaches it as PID 1). A test that
    /// looks at the process right after `start` calls this with its pid: under runc, when
    /// the init has not exec'd yet, it prints the deviation and waits for the exec; any
    /// other runtime's `start` is held to having exec'd the process.
    pub fn runc_wait_for_exec(&self, pid: i32) {
        let runc_init = || {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("runc"))
        };
        if self.kind == Kind::Runc
            && runc_init()
            && self.runc_deviation("`start` returns before runc's init has exec'd the process")
        {
            crate::wait_until("runc's init to exec the container's process", || {
                !runc_init()
            });
        }
    }

    /// Whether the runtime claims `word` (a namespace, hook, mount option...)
    /// in its `features` output. capsa must support everything the suite
    /// tests, so for capsa this is always true and the test runs.
    pub fn supports(&self, word: &str) -> bool {
        if self.is_capsa() {
            return true;
        }
        let out = run_cmd(Command::new(&self.path).arg("features"));
        out.status.success() && out.stdout.contains(&format!("\"{word}\""))
    }
}

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate dir has a parent")
        .to_path_buf()
}

/// What a command did: its exit status and its captured output.
#[derive(Debug, Clone)]
pub struct Out {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts success; returns self for chaining.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Asserts failure with exit status 1 (the runc convention for errors).
    #[track_caller]
    pub fn fails(self) -> Out {
        assert_eq!(self.code(), Some(1), "expected exit status 1: {self}");
        self
    }

    /// Asserts an `exec` that failed by itself (not its process): exit status 255, runc's
    /// convention, so callers can tell it from the process exiting 1.
    #[track_caller]
    pub fn exec_fails(self) -> Out {
        assert_eq!(
            self.code(),
            Some(255),
            "expected exec's own failure (255): {self}"
        );
        self
    }

    /// stdout with surrounding whitespace trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    /// stdout and stderr together (runtimes differ on where errors go).
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin from /dev/null, capturing stdout and stderr. A
/// command still running after [`HANG_GUARD`] is killed and reported as hung.
///
/// Output goes to anonymous temp files, not pipes: a detached container
/// (create, run -d) inherits the runtime's stdio and keeps it open, so
/// waiting for a pipe's EOF would wait for the container.
pub fn run_cmd(cmd: &mut Command) -> Out {
    let desc = describe(cmd);
    let mut out_f = tempfile::tempfile().expect("temp file for stdout");
    let mut err_f = tempfile::tempfile().expect("temp file for stderr");
    cmd.stdin(Stdio::null())
        .stdout(out_f.try_clone().expect("dup stdout file"))
        .stderr(err_f.try_clone().expect("dup stderr file"));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn `{desc}`: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(HANG_GUARD) {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => panic!("waiting for `{desc}`: {e}"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not been
            // reaped (the waiter thread still waits for it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("`{desc}` hung (killed after {HANG_GUARD:?})");
        }
    };
    Out {
        cmd: desc,
        status,
        stdout: read_all(&mut out_f),
        stderr: read_all(&mut err_f),
    }
}

/// Runs `cmd` with all stdio on /dev/null for its effect only, never
/// panicking: for cleanup in Drop guards. A command still running after
/// [`HANG_GUARD`] is killed. Returns whether it exited 0.
pub fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let mut status = None;
    crate::poll::try_wait_until(HANG_GUARD, || match child.try_wait() {
        Ok(Some(st)) => {
            status = Some(st);
            true
        }
        Ok(None) => false,
        Err(_) => true,
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status.map(|s| s.success()).unwrap_or(false)
}

fn read_all(f: &mut std::fs::File) -> String {
    let mut buf = Vec::new();
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

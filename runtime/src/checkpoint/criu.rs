//! CRIU's RPC: `criu swrk FD` serves one request over a SEQPACKET socket (protobuf
//! messages of CRIU's rpc.proto, the types from the `rust-criu` crate), sending NOTIFY
//! messages at the points of a dump or restore where the caller has work to do (the
//! restored pid, a pty master, hooks), each answered before CRIU goes on.

use std::io::BufRead;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use protobuf::{Message, MessageField};
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_features, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};

/// Oldest CRIU with the VERSION request (runc's minimum too).
pub const MIN_VERSION: u32 = 30000;

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("{0} not found: checkpoint and restore need CRIU 3.0 or newer (Debian: apt-get install criu), or --criu PATH")]
    NotFound(String),
    #[error("run {path}: {err}")]
    Spawn { path: String, err: std::io::Error },
    #[error("{path} does not answer CRIU's VERSION request ({cause}): checkpoint and restore need CRIU 3.0 or newer")]
    NoVersion { path: String, cause: String },
    #[error("CRIU {found} is too old: {what} needs CRIU {needed} or newer")]
    TooOld {
        found: String,
        needed: String,
        what: String,
    },
    #[error("this CRIU lacks {feature}, which {flag} needs")]
    MissingFeature { feature: String, flag: String },
    #[error("criu {req} failed{errno}{msg}{log}")]
    Failed {
        req: String,
        errno: String,
        msg: String,
        log: String,
    },
    #[error("criu swrk: {0}")]
    Protocol(String),
}

/// Print a version number as CRIU's own (31701 = 3.17.1).
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// What the caller does at CRIU's notification points ("post-dump", "setup-namespaces",
/// "post-restore", "orphan-pts-master", "status-ready", ...). `fd` is a descriptor that
/// came with the message (the pty master of "orphan-pts-master").
pub trait Notify {
    fn notify(&mut self, script: &str, pid: i32, fd: Option<OwnedFd>) -> crate::Result<()>;
}

/// No notification needs anything (VERSION, FEATURE_CHECK).
pub struct Ignore;

impl Notify for Ignore {
    fn notify(&mut self, _: &str, _: i32, _: Option<OwnedFd>) -> crate::Result<()> {
        Ok(())
    }
}

/// One `criu` binary and how to reach it.
pub struct Criu {
    pub path: PathBuf,
    version: Option<u32>,
}

/// How `criu swrk` is started for one request.
#[derive(Default)]
pub struct Spawn<'a> {
    /// Our stdio for CRIU's (restore: the restored process' stdio comes from CRIU's 0-2);
    /// else /dev/null.
    pub inherit_stdio: bool,
    /// Descriptors CRIU must inherit at the same numbers (`inherit_fd` of a restore).
    pub keep: &'a [&'a OwnedFd],
    /// The work dir's log, named in errors.
    pub log: Option<PathBuf>,
}

impl Criu {
    pub fn new(path: &Path) -> Criu {
        Criu {
            path: path.to_path_buf(),
            version: None,
        }
    }

    /// CRIU's version (31701 for 3.17.1; a git build counts as the next minor, as runc).
    pub fn version(&mut self) -> crate::Result<u32> {
        if let Some(v) = self.version {
            return Ok(v);
        }
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::VERSION);
        let resp = self
            .request(req, &Spawn::default(), |_, _| Ok(()), &mut Ignore)
            .map_err(|e| match e {
                e @ crate::Error::Criu(CriuError::NotFound(_) | CriuError::Spawn { .. }) => e,
                // Before 3.0 there is no VERSION request: swrk fails or hangs up.
                e => CriuError::NoVersion {
                    path: self.path.display().to_string(),
                    cause: e.to_string(),
                }
                .into(),
            })?;
        let v = resp
            .version
            .as_ref()
            .ok_or_else(|| CriuError::Protocol("the VERSION answer carries no version".into()))?;
        let mut n = (v.major_number().max(0) as u32) * 10000
            + (v.minor_number().max(0) as u32) * 100
            + v.sublevel().max(0) as u32;
        if v.has_gitid() {
            n = n - n % 100 + 100;
        }
        self.version = Some(n);
        Ok(n)
    }

    /// Fail unless CRIU is at least `min` (what names the flag or action that needs it).
    pub fn require(&mut self, min: u32, what: &str) -> crate::Result<()> {
        let v = self.version()?;
        check_version(v, min, what).map_err(Into::into)
    }

    /// Ask CRIU whether it has the features set in `want` (FEATURE_CHECK); `flag` names
    /// the option that needs them.
    pub fn require_features(
        &mut self,
        want: Criu_features,
        opts: &Criu_opts,
        flag: &str,
    ) -> crate::Result<()> {
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::FEATURE_CHECK);
        // CRIU before 2.12 crashes on a FEATURE_CHECK without options.
        req.opts = MessageField::some(opts.clone());
        req.features = MessageField::some(want.clone());
        let resp = self.request(req, &Spawn::default(), |_, _| Ok(()), &mut Ignore)?;
        let have = resp.features.as_ref();
        let missing = |asked: bool, got: Option<bool>| asked && got != Some(true);
        if missing(
            want.mem_track(),
            have.and_then(|f| f.has_mem_track().then(|| f.mem_track())),
        ) {
            return Err(CriuError::MissingFeature {
                feature: "memory tracking (mem_track: the kernel's soft-dirty bits)".into(),
                flag: flag.into(),
            }
            .into());
        }
        if missing(
            want.lazy_pages(),
            have.and_then(|f| f.has_lazy_pages().then(|| f.lazy_pages())),
        ) {
            return Err(CriuError::MissingFeature {
                feature: "lazy pages (lazy_pages: userfaultfd)".into(),
                flag: flag.into(),
            }
            .into());
        }
        Ok(())
    }

    /// Run one request: start `criu swrk`, call `started` with its pid and the request (a
    /// restore puts CRIU in the container's cgroup there, and says where it is), send `req`, serve notifications until the answer
    /// to `req` comes, and wait for CRIU to exit.
    pub fn request(
        &mut self,
        mut req: Criu_req,
        spawn: &Spawn,
        started: impl FnOnce(i32, &mut Criu_req) -> crate::Result<()>,
        notify: &mut dyn Notify,
    ) -> crate::Result<Criu_resp> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| crate::Error::sys("criu socketpair", e))?;
        let mut child = self.spawn(&theirs, spawn)?;
        drop(theirs);
        let kind = req.type_();
        let result = started(child.id() as i32, &mut req)
            .and_then(|()| converse(&ours, &req, spawn.log.as_deref(), notify));
        // Our end closed: a PRE_DUMP swrk waits for a next request, and goes now.
        drop(ours);
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        match child.wait() {
            Ok(s) if !s.success() && kind != Criu_req_type::PRE_DUMP => Err(CriuError::Failed {
                req: format!("{kind:?}"),
                errno: String::new(),
                msg: format!(": criu exited with {s}"),
                log: log_hint(spawn.log.as_deref()),
            }
            .into()),
            _ => Ok(resp),
        }
    }

    fn spawn(&self, theirs: &OwnedFd, spawn: &Spawn) -> crate::Result<Child> {
        let fd = theirs.as_raw_fd();
        // The socket and the kept descriptors survive the exec at their numbers.
        for f in std::iter::once(theirs).chain(spawn.keep.iter().copied()) {
            fcntl(f.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
                .map_err(|e| crate::Error::sys("criu: clear close-on-exec", e))?;
        }
        let mut cmd = Command::new(&self.path);
        cmd.arg("swrk").arg(fd.to_string());
        if !spawn.inherit_stdio {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        let child = cmd.spawn();
        for f in spawn.keep {
            let _ = fcntl(f.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
        }
        child.map_err(|err| {
            let path = self.path.display().to_string();
            if err.kind() == std::io::ErrorKind::NotFound {
                CriuError::NotFound(if self.path.components().count() == 1 {
                    format!("{path} (in PATH)")
                } else {
                    path
                })
                .into()
            } else {
                CriuError::Spawn { path, err }.into()
            }
        })
    }
}

fn check_version(v: u32, min: u32, what: &str) -> Result<(), CriuError> {
    if v < min {
        return Err(CriuError::TooOld {
            found: version_string(v),
            needed: version_string(min),
            what: what.into(),
        });
    }
    Ok(())
}

/// Send `req`, then read answers: notifications are served and acknowledged; the answer
/// of `req`'s type ends the conversation.
fn converse(
    sock: &OwnedFd,
    req: &Criu_req,
    log: Option<&Path>,
    notify: &mut dyn Notify,
) -> crate::Result<Criu_resp> {
    let kind = req.type_();
    send(sock, req)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (n, mut fds) = capsa_linux::fdpass::recv(sock.as_fd(), &mut buf)
            .map_err(|e| crate::Error::sys("criu swrk: receive", e))?;
        if n == 0 {
            return Err(CriuError::Failed {
                req: format!("{kind:?}"),
                errno: String::new(),
                msg: ": criu went away without an answer".into(),
                log: log_hint(log),
            }
            .into());
        }
        let resp = Criu_resp::parse_from_bytes(&buf[..n])
            .map_err(|e| CriuError::Protocol(format!("bad answer: {e}")))?;
        if !resp.success() {
            return Err(failure(kind, &resp, log).into());
        }
        match resp.type_() {
            Criu_req_type::NOTIFY => {
                let (script, pid) = resp
                    .notify
                    .as_ref()
                    .map(|n| (n.script().to_string(), n.pid()))
                    .unwrap_or_default();
                tracing::debug!("criu notify: {script} (pid {pid})");
                let r = notify.notify(&script, pid, fds.pop());
                let mut ack = Criu_req::new();
                ack.set_type(Criu_req_type::NOTIFY);
                ack.set_notify_success(r.is_ok());
                send(sock, &ack)?;
                r?;
            }
            t if t == kind => return Ok(resp),
            t => {
                return Err(
                    CriuError::Protocol(format!("answer of type {t:?} to a {kind:?}")).into(),
                )
            }
        }
    }
}

fn send(sock: &OwnedFd, msg: &Criu_req) -> crate::Result<()> {
    let data = msg
        .write_to_bytes()
        .map_err(|e| CriuError::Protocol(format!("encode: {e}")))?;
    capsa_linux::fdpass::send(sock.as_fd(), &data, &[])
        .map_err(|e| crate::Error::sys("criu swrk: send", e))?;
    Ok(())
}

fn failure(kind: Criu_req_type, resp: &Criu_resp, log: Option<&Path>) -> CriuError {
    let errno = match resp.cr_errno() {
        0 => String::new(),
        e => format!(": {}", nix::errno::Errno::from_raw(e)),
    };
    let msg = match resp.cr_errmsg() {
        "" => String::new(),
        m => format!(": {m}"),
    };
    CriuError::Failed {
        req: format!("{kind:?}"),
        errno,
        msg,
        log: log_hint(log),
    }
}

/// Where the log is, with its first error lines: CRIU's answer rarely says why.
fn log_hint(log: Option<&Path>) -> String {
    let Some(log) = log else {
        return String::new();
    };
    let errors: Vec<String> = std::fs::File::open(log)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(|l| l.ok())
                .filter(|l| l.contains("Error (") || l.contains("Error:"))
                .take(3)
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut s = format!(" (log: {}", log.display());
    for e in errors {
        s.push_str("; ");
        s.push_str(&e);
    }
    s.push(')');
    s
}

impl From<CriuError> for crate::Error {
    fn from(e: CriuError) -> Self {
        crate::Error::Criu(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_criu_prints_them() {
        assert_eq!(version_string(31701), "3.17.1");
        assert_eq!(version_string(30000), "3.0.0");
        assert_eq!(version_string(40100), "4.1.0");
    }

    #[test]
    fn too_old_names_what_needs_more() {
        let e = check_version(21200, MIN_VERSION, "checkpoint").unwrap_err();
        assert_eq!(
            e.to_string(),
            "CRIU 2.12.0 is too old: checkpoint needs CRIU 3.0.0 or newer"
        );
        assert!(check_version(31701, 31400, "x").is_ok());
    }

    #[test]
    fn a_missing_criu_says_how_to_get_one() {
        let mut c = Criu::new(Path::new("/nonexistent/criu"));
        let e = c.version().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/criu not found"), "{e}");
        assert!(e.contains("CRIU 3.0 or newer"), "{e}");
    }

    /// A `criu` that cannot speak the RPC (/bin/false exits at once): the error says it
    /// does not answer VERSION, and what is needed.
    #[test]
    fn a_criu_without_version_is_too_old() {
        let e = Criu::new(Path::new("/bin/false"))
            .version()
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not answer CRIU's VERSION request"), "{e}");
        assert!(e.contains("CRIU 3.0 or newer"), "{e}");
    }
}

//! A process's standard streams. containerd names them by URI: a fifo path
//! (ctr's default), `file:///path` or `binary:///path?args`. The container gets
//! pipes (or a pty) and one thread per stream copies between those and the
//! client's end; `wait_output` lets delete drain them first.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;

use crate::error::{Error, Result};
use crate::runtime::ChildStdio;

#[derive(Debug, Clone, Default)]
pub struct StdioSpec {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where an output stream goes.
enum Sink {
    Null,
    Fifo(PathBuf),
    File(PathBuf),
    Binary(PathBuf, Vec<String>),
}

fn parse_uri(uri: &str) -> Result<Sink> {
    if uri.is_empty() {
        return Ok(Sink::Null);
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(Sink::Fifo(uri.into()));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path);
    match scheme {
        "fifo" => Ok(Sink::Fifo(path.into())),
        "file" => Ok(Sink::File(path.into())),
        "binary" => {
            // As the Go shim: each key, then its value when it has one.
            let mut pairs: Vec<(String, String)> = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect();
            pairs.sort();
            let args = pairs
                .into_iter()
                .flat_map(|(k, v)| std::iter::once(k).chain((!v.is_empty()).then_some(v)))
                .collect();
            Ok(Sink::Binary(path.into(), args))
        }
        other => Err(Error::InvalidArgument(format!(
            "unsupported stdio URI scheme {other:?} in {uri:?}"
        ))),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts running output copiers so that delete can wait for them to drain.
#[derive(Default)]
struct Pending {
    n: Mutex<usize>,
    cv: Condvar,
    /// set by delete: a copier still waiting for its client to open the fifo gives up
    /// (a client that reads the output has its end open by then)
    abandon: AtomicBool,
}

impl Pending {
    fn add(&self) {
        *self.n.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    fn done(&self) {
        *self.n.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.cv.notify_all();
    }
    /// Waits until no copier runs, at most `timeout`.
    fn wait(&self, timeout: Duration) {
        let n = self.n.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.cv.wait_timeout_while(n, timeout, |n| *n > 0);
    }
}

type SharedWriter = Arc<Mutex<Option<File>>>;

/// Waits for a process's output copiers, without holding the process.
pub struct OutputDone(Arc<Pending>);

impl OutputDone {
    /// Waits until the copiers have written everything the process wrote (their pipes
    /// reached EOF), at most `timeout`: a child left behind may hold the pipe open.
    pub fn wait(&self, timeout: Duration) {
        self.0.wait(timeout)
    }
}

pub struct ProcessIo {
    stdin: SharedWriter,
    pending: Arc<Pending>,
    console: Option<File>,
    spec: StdioSpec,
    logger: Option<u32>,
}

fn spawn_copier(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(f)
        .map(drop)
        .map_err(Error::io("spawn io thread"))
}

/// Where an output copier writes.
enum Dest {
    File(File),
    /// a client's fifo, opened by the copier once the client has its end open
    Fifo(PathBuf),
}

/// The client's output sink at `path`: its fifo, or a plain file opened now.
fn output_dest(path: &Path) -> Result<Dest> {
    use std::os::unix::fs::FileTypeExt;
    let meta =
        std::fs::metadata(path).map_err(Error::io(format!("open fifo {}", path.display())))?;
    if meta.file_type().is_fifo() {
        return Ok(Dest::Fifo(path.to_path_buf()));
    }
    OpenOptions::new()
        .append(true)
        .open(path)
        .map(Dest::File)
        .map_err(Error::io(format!("open {}", path.display())))
}

/// Opens the client's fifo for writing once the client has opened its read end, as the Go
/// shim's O_WRONLY open waits for it: what the process wrote then stays in the fifo until
/// the client reads it. (With only an O_RDWR end of our own, the output of a process that
/// exited before the client's open went with our close: ctr opens its end in a goroutine,
/// and `ctr run --rm` now and then printed nothing.) The second, read end keeps writes from
/// failing while the client reconnects. None when delete gave up on the client.
fn open_fifo_when_read(path: &Path, abandon: &AtomicBool) -> Option<(File, File)> {
    let nonblock = || {
        let mut o = OpenOptions::new();
        o.custom_flags(libc::O_NONBLOCK);
        o
    };
    let writer = loop {
        match nonblock().write(true).open(path) {
            Ok(w) => break w,
            // ENXIO: no reader yet
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if abandon.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    };
    let keep = nonblock().read(true).open(path).ok()?;
    nix::fcntl::fcntl(&writer, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty())).ok()?;
    Some((writer, keep))
}

fn open_log_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("mkdir {}", dir.display())))?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(Error::io(format!("open log file {}", path.display())))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(Error::nix("pipe"))
}

/// Copies `from` into `to` until EOF (or EIO: the pty's last slave closed).
fn copy_out(mut from: File, mut to: File) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// Copies the client's stdin fifo into the process until the client closes
/// it or CloseIO drops the writer.
fn copy_stdin(path: PathBuf, writer: SharedWriter) {
    // O_NONBLOCK: opening a fifo for reading must not wait for the client.
    let Ok(mut fifo) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
    else {
        writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        return;
    };
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        // poll() reports nothing until a writer has connected, so an early
        // read of 0 (no writer yet) is never mistaken for EOF.
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        match fifo.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                let written = w.as_mut().map(|f| f.write_all(&buf[..n]).is_ok());
                if written != Some(true) {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    writer.lock().unwrap_or_else(|e| e.into_inner()).take();
}

impl ProcessIo {
    /// Prepares the streams of a process about to be created. For a terminal
    /// the output is wired once the pty arrives (`attach_console`).
    pub fn new(spec: &StdioSpec, id: &str, namespace: &str) -> Result<(Self, ChildStdio)> {
        let mut io = ProcessIo {
            stdin: Arc::new(Mutex::new(None)),
            pending: Arc::new(Pending::default()),
            console: None,
            spec: spec.clone(),
            logger: None,
        };
        let mut child = ChildStdio {
            stdin: None,
            stdout: None,
            stderr: None,
        };
        if spec.terminal {
            return Ok((io, child));
        }
        if !spec.stdin.is_empty() {
            let (r, w) = pipe()?;
            child.stdin = Some(r);
            *io.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(File::from(w));
            let (path, writer) = (PathBuf::from(&spec.stdin), io.stdin.clone());
            spawn_copier("stdin", move || copy_stdin(path, writer))?;
        }
        let out = parse_uri(&spec.stdout)?;
        let err = parse_uri(&spec.stderr)?;
        match (&out, &err) {
            (Sink::Binary(bin, args), _) => {
                let (or, ow) = pipe()?;
                let (er, ew) = pipe()?;
                io.logger = Some(start_logger(bin, args, id, namespace, or, er)?);
                child.stdout = Some(ow);
                child.stderr = Some(ew);
            }
            (Sink::File(path), _) => {
                let file = open_log_file(path)?;
                let (or, ow) = pipe()?;
                let (er, ew) = pipe()?;
                let file2 = file.try_clone().map_err(Error::io("dup log file"))?;
                io.copy(File::from(or), Dest::File(file), "stdout")?;
                io.copy(File::from(er), Dest::File(file2), "stderr")?;
                child.stdout = Some(ow);
                child.stderr = Some(ew);
            }
            _ => {
                child.stdout = io.fifo_stream(&out, "stdout")?;
                child.stderr = io.fifo_stream(&err, "stderr")?;
            }
        }
        Ok((io, child))
    }

    fn copy(&self, from: File, to: Dest, name: &str) -> Result<()> {
        self.pending.add();
        let pending = self.pending.clone();
        spawn_copier(name, move || {
            match to {
                Dest::File(to) => copy_out(from, to),
                Dest::Fifo(path) => {
                    if let Some((to, _keep)) = open_fifo_when_read(&path, &pending.abandon) {
                        copy_out(from, to);
                    }
                }
            }
            pending.done();
        })
        .inspect_err(|_| self.pending.done())
    }

    fn fifo_stream(&self, sink: &Sink, name: &str) -> Result<Option<OwnedFd>> {
        match sink {
            Sink::Null => Ok(None),
            Sink::Fifo(path) => {
                let dest = output_dest(path)?;
                let (r, w) = pipe()?;
                self.copy(File::from(r), dest, name)?;
                Ok(Some(w))
            }
            _ => Err(Error::InvalidArgument(format!(
                "{name}: a log URI must be given for both stdout and stderr"
            ))),
        }
    }

    /// Wires the pty master of a terminal process to the client's fifos.
    pub fn attach_console(&mut self, master: OwnedFd) -> Result<()> {
        let master = File::from(master);
        let dup = || master.try_clone().map_err(Error::io("dup pty master"));
        match parse_uri(&self.spec.stdout)? {
            Sink::Fifo(path) => self.copy(dup()?, output_dest(&path)?, "console-out")?,
            Sink::File(path) => {
                self.copy(dup()?, Dest::File(open_log_file(&path)?), "console-out")?
            }
            Sink::Null => {}
            Sink::Binary(..) => {
                return Err(Error::InvalidArgument(
                    "binary:// logging of a terminal is not supported".into(),
                ))
            }
        }
        if !self.spec.stdin.is_empty() {
            *self.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(dup()?);
            let (path, writer) = (PathBuf::from(&self.spec.stdin), self.stdin.clone());
            spawn_copier("console-in", move || copy_stdin(path, writer))?;
        }
        self.console = Some(master);
        Ok(())
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        match &self.console {
            Some(m) => crate::console::resize(m, width, height),
            None => Err(Error::FailedPrecondition("process has no terminal".into())),
        }
    }

    /// CloseIO: the process sees EOF on stdin.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// A handle that waits for this process's output copiers (see `OutputDone::wait`).
    pub fn output_done(&self) -> OutputDone {
        OutputDone(self.pending.clone())
    }

    /// Waits (bounded) until the output copiers have drained, then stops a
    /// binary logger that has not exited on its own.
    pub fn wait_output(&self, timeout: Duration) {
        self.pending.abandon.store(true, Ordering::Relaxed);
        self.pending.wait(timeout);
        self.close_stdin();
        if let Some(pid) = self.logger {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            // The logger exits at EOF of both pipes; give it a moment, then stop it.
            for _ in 0..50 {
                if nix::sys::signal::kill(pid, None).is_err() || is_zombie(pid.as_raw()) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Starts a `binary://` logger as the Go shim does: fd 3 and 4 are the read
/// ends of stdout and stderr, fd 5 is closed by the logger once it is ready.
fn start_logger(
    bin: &Path,
    args: &[String],
    id: &str,
    namespace: &str,
    out: OwnedFd,
    err: OwnedFd,
) -> Result<u32> {
    let (ready_r, ready_w) = pipe()?;
    let fds = [out.as_raw_fd(), err.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    crate::sys::pass_fds_as_3_4_5(&mut cmd, fds);
    let child = cmd
        .spawn()
        .map_err(Error::io(format!("start logger {}", bin.display())))?;
    drop((out, err, ready_w));
    // Wait until the logger closes its end of the ready pipe (or exits).
    let mut b = [0u8; 1];
    let _ = File::from(ready_r).read(&mut b);
    Ok(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_parsed() {
        assert!(matches!(parse_uri("").unwrap(), Sink::Null));
        assert!(
            matches!(parse_uri("/run/x/stdout").unwrap(), Sink::Fifo(p) if p == Path::new("/run/x/stdout"))
        );
        assert!(
            matches!(parse_uri("file:///var/log/a%20b.log").unwrap(), Sink::File(p) if p == Path::new("/var/log/a b.log"))
        );
        match parse_uri("binary:///usr/bin/logger?b=2&a=&c=x%2Fy").unwrap() {
            Sink::Binary(p, args) => {
                assert_eq!(p, Path::new("/usr/bin/logger"));
                assert_eq!(args, vec!["a", "b", "2", "c", "x/y"]);
            }
            _ => panic!("not binary"),
        }
        assert!(parse_uri("http://x").is_err());
    }

    /// A client reading a fifo from a moment after the process wrote and exited (ctr opens
    /// its end in a goroutine) still gets the output.
    #[test]
    fn output_waits_for_a_late_fifo_reader() {
        let dir = std::env::temp_dir().join(format!("capsa-shim-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (out, err) = (dir.join("stdout"), dir.join("stderr"));
        for f in [&out, &err] {
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        let spec = StdioSpec {
            stdout: out.to_str().unwrap().into(),
            stderr: err.to_str().unwrap().into(),
            ..StdioSpec::default()
        };
        let (io, child) = ProcessIo::new(&spec, "c", "ns").unwrap();
        // the process writes and exits before the client has opened the fifo
        File::from(child.stdout.unwrap())
            .write_all(b"hello\n")
            .unwrap();
        drop(child.stderr);
        std::thread::sleep(Duration::from_millis(200));
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..200 {
            match reader.read(&mut buf) {
                Ok(0) if !got.is_empty() => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // the stderr copier, whose client never came, gives up at delete
        io.wait_output(Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), "hello\n");
    }
}

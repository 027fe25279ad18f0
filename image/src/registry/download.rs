//! Blob downloads that the unpacker reads while they run. Each blob goes to a partial file
//! (STORE/tmp/partial/<hex>) that outlives a failed pull: the next pull asks only for the
//! bytes it lacks (Range). A downloader thread appends to the file; a `Tail` reader follows
//! it, waiting for bytes not yet written, so download, digest check and unpack are one pass.
use super::client::Registry;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use indicatif::ProgressBar;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// An exclusive flock on a partial file: a second pull of the same blob waits for the first
/// (which then has renamed the file away, or left it for a resume).
pub struct PartialLock(#[allow(dead_code)] File);

/// Locks the partial file of each download, in digest order (two pulls locking overlapping
/// sets cannot deadlock). A file renamed away while we waited is opened anew.
pub fn lock_partials(dls: &[&Download]) -> Result<Vec<PartialLock>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut sorted: Vec<&&Download> = dls.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    let mut locks = Vec::new();
    for dl in sorted {
        loop {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&dl.path)
                .ctx(|| format!("open {}", dl.path.display()))?;
            crate::sys::flock(f.as_raw_fd(), true).ctx(|| format!("lock {}", dl.path.display()))?;
            let same = match (f.metadata(), std::fs::metadata(&dl.path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                locks.push(PartialLock(f));
                break;
            }
        }
    }
    Ok(locks)
}

/// Tries of one blob (the first request and the resumptions after a broken connection).
const ATTEMPTS: u32 = 4;

#[derive(Default)]
struct Progress {
    /// bytes in the partial file
    len: u64,
    /// set when the downloader stops: Ok (whole), or why not
    done: Option<std::result::Result<(), String>>,
}

/// One blob being downloaded: shared by its downloader and its reader.
pub struct Download {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
    state: Mutex<Progress>,
    cv: Condvar,
}

impl Download {
    pub fn new(partial_dir: &Path, digest: &Digest, size: u64) -> Arc<Download> {
        Arc::new(Download {
            digest: digest.clone(),
            size,
            path: partial_dir.join(digest.hex()),
            state: Mutex::new(Progress::default()),
            cv: Condvar::new(),
        })
    }

    fn publish(&self, len: u64) {
        self.state.lock().expect("lock").len = len;
        self.cv.notify_all();
    }

    fn finish(&self, r: std::result::Result<(), String>) {
        self.state.lock().expect("lock").done = Some(r);
        self.cv.notify_all();
    }

    /// A reader of the blob from its first byte, waiting for the downloader where needed.
    /// Opened before the downloader starts writing.
    pub fn tail(self: &Arc<Self>) -> Result<Tail> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .ctx(|| format!("open {}", self.path.display()))?;
        Ok(Tail {
            file: f,
            pos: 0,
            dl: self.clone(),
        })
    }

    /// Downloads what the partial file lacks. `abort` stops it between reads.
    pub fn run(&self, reg: &Registry, repo: &str, bar: &ProgressBar, abort: &AtomicBool) {
        let r = self.fetch(reg, repo, bar, abort);
        if let Err(e) = &r {
            tracing::debug!(blob = %self.digest, "download stopped: {e}");
        }
        self.finish(r.map_err(|e| e.to_string()));
    }

    fn fetch(
        &self,
        reg: &Registry,
        repo: &str,
        bar: &ProgressBar,
        abort: &AtomicBool,
    ) -> Result<()> {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .ctx(|| format!("open {}", self.path.display()))?;
        let mut have = f.metadata().ctx(|| "stat partial blob")?.len();
        if have > self.size {
            f.set_len(0).ctx(|| "truncate partial blob")?;
            have = 0;
        }
        if have > 0 {
            tracing::debug!(blob = %self.digest, have, "resuming download");
        }
        self.publish(have);
        bar.set_position(have);
        let mut buf = vec![0u8; 256 << 10];
        let mut attempt = 0;
        let mut last_err = String::new();
        while have < self.size {
            if abort.load(Ordering::Relaxed) {
                return Err(Error::Registry("download stopped".into()));
            }
            if attempt == ATTEMPTS {
                return Err(Error::Registry(format!(
                    "blob {}: {have} of {} bytes after {ATTEMPTS} tries: {last_err}",
                    self.digest, self.size
                )));
            }
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(300 << attempt));
            }
            attempt += 1;
            let (mut body, start) = match reg.blob(repo, &self.digest, have) {
                Ok(b) => b,
                // a refusal (4xx, but for Too Many Requests) will not change by asking again
                Err(e @ Error::Status { status, .. })
                    if (400..500).contains(&status) && status != 429 =>
                {
                    return Err(e)
                }
                Err(e) => {
                    last_err = e.to_string();
                    continue;
                }
            };
            // the registry ignored the Range: skip what we have (all of it, or ask again)
            if start < have {
                match io::copy(&mut (&mut body).take(have - start), &mut io::sink()) {
                    Ok(n) if n == have - start => {}
                    Ok(n) => {
                        last_err = format!("connection closed after {n} bytes");
                        continue;
                    }
                    Err(e) => {
                        last_err = e.to_string();
                        continue;
                    }
                }
            }
            loop {
                if abort.load(Ordering::Relaxed) {
                    return Err(Error::Registry("download stopped".into()));
                }
                let n = match body.read(&mut buf) {
                    Ok(0) => {
                        last_err = format!("connection closed after {have} bytes");
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        last_err = e.to_string();
                        break;
                    }
                };
                if have + n as u64 > self.size {
                    return Err(Error::Registry(format!(
                        "blob {}: larger than the {} bytes its descriptor gives",
                        self.digest, self.size
                    )));
                }
                f.write_all(&buf[..n])
                    .ctx(|| format!("write {}", self.path.display()))?;
                have += n as u64;
                self.publish(have);
                bar.set_position(have);
                if have == self.size {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Reads a blob while its download runs.
pub struct Tail {
    file: File,
    pos: u64,
    dl: Arc<Download>,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = {
            let mut st = self.dl.state.lock().expect("lock");
            loop {
                if st.len > self.pos {
                    break st.len - self.pos;
                }
                match &st.done {
                    Some(Ok(())) => return Ok(0),
                    Some(Err(e)) => return Err(io::Error::other(e.clone())),
                    None => st = self.dl.cv.wait(st).expect("lock"),
                }
            }
        };
        self.file.seek(SeekFrom::Start(self.pos))?;
        let want = buf.len().min(avail as usize);
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

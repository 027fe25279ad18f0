//! The content-addressed store: blobs by sha256, layers unpacked once by diff_id, named refs,
//! per-container writable layers. Every file lands by temp + rename; a shared/exclusive flock
//! on `lock` keeps `gc`/`rmi` away from running imports, bundles and commits.
use crate::digest::Digest;
use crate::error::{malformed, Error, IoContext, Result};
use crate::oci::{ImageConfig, Manifest};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const DEFAULT_STORE: &str = "/var/lib/capsa";

pub struct Store {
    pub root: PathBuf,
}

/// Held for the duration of a store operation; released on drop.
pub struct StoreLock(#[allow(dead_code)] File);

/// Metadata kept beside each unpacked layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    /// Disk usage of the unpacked layer in bytes (st_blocks * 512, hardlinks once).
    pub size: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct RefsFile {
    refs: BTreeMap<String, Digest>,
}

/// A directory under STORE/tmp removed on drop unless `keep()` was called.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_tree(&self.path);
        }
    }
}

/// rm -rf that also copes with read-only directories inside (layers may have 0555 dirs).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `data` to `path` through a temp file in the same dir and a rename.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .ctx(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))
}

/// `name` with `:latest` added when it has neither tag nor digest.
pub fn normalize_ref(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "containers", "tmp", "empty"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(|| format!("create store dir {}", p.display()))?;
        }
        let root = fs::canonicalize(&root).ctx(|| format!("resolve {}", root.display()))?;
        Ok(Store { root })
    }

    fn lock(&self, file: &str, exclusive: bool) -> Result<StoreLock> {
        let p = self.root.join(file);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        sys::flock(f.as_raw_fd(), exclusive).ctx(|| format!("lock {}", p.display()))?;
        Ok(StoreLock(f))
    }
    /// Shared lock: imports, bundles, commits run side by side.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock("lock", false)
    }
    /// Exclusive lock: gc and rmi, which delete.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock("lock", true)
    }

    pub fn tmp_dir(&self, prefix: &str) -> Result<TempDir> {
        let path = self.root.join("tmp").join(format!("{prefix}-{}", unique()));
        fs::create_dir(&path).ctx(|| format!("create {}", path.display()))?;
        Ok(TempDir { path, keep: false })
    }

    // ------------------------------------------------------------------ blobs
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }
    /// Moves a verified file into the blob dir (no-op if the blob is already there).
    pub fn put_blob_file(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let dst = self.blob_path(d);
        if dst.exists() {
            return Ok(());
        }
        fs::rename(tmp, &dst).ctx(|| format!("store blob {d}"))
    }
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of_bytes(data);
        let dst = self.blob_path(&d);
        if !dst.exists() {
            atomic_write(&dst, data)?;
        }
        Ok(d)
    }
    /// Reads a small blob and checks its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let data = fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Missing {
                    what: "blob".into(),
                    digest: d.to_string(),
                    source_name: "the store".into(),
                }
            } else {
                Error::Io {
                    context: format!("read {}", p.display()),
                    source: e,
                }
            }
        })?;
        let got = Digest::of_bytes(&data);
        if &got != d {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", p.display()),
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(data)
    }
    pub fn manifest(&self, d: &Digest) -> Result<Manifest> {
        serde_json::from_slice(&self.read_blob(d)?)
            .map_err(|e| malformed(format!("manifest {d}"), e))
    }
    pub fn config(&self, d: &Digest) -> Result<ImageConfig> {
        serde_json::from_slice(&self.read_blob(d)?).map_err(|e| malformed(format!("config {d}"), e))
    }

    // ------------------------------------------------------------------ layers
    // A layer is stored unpacked over the layers below it, so it is keyed by its chain ID
    // (Digest::chain_ids), not its diff_id: the same layer over another base is another dir.
    // The bottom layer's chain ID is its diff_id.
    pub fn layer_root(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }
    /// The unpacked content of a layer (an overlay lower dir).
    pub fn layer_fs(&self, chain: &Digest) -> PathBuf {
        self.layer_root(chain).join("fs")
    }
    /// The layer dirs of an image's layers (its diff_ids), bottom first.
    pub fn layer_dirs(&self, diff_ids: &[Digest]) -> Vec<PathBuf> {
        self.chains(diff_ids)
            .iter()
            .map(|c| self.layer_fs(c))
            .collect()
    }
    /// The keys of an image's layer dirs (its diff_ids, bottom first): the chain IDs, except
    /// where a foreign layer was skipped (import/pull without its blob) and the store has no
    /// real unpack of it: that layer's `skipped_chain`, and the chains above it built on it.
    pub fn chains(&self, diff_ids: &[Digest]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let c = Digest::chain_step(out.last(), d);
            let skipped = skipped_chain(&c);
            out.push(if !self.has_layer(&c) && self.has_layer(&skipped) {
                skipped
            } else {
                c
            });
        }
        out
    }
    pub fn has_layer(&self, chain: &Digest) -> bool {
        self.layer_root(chain).join("meta.json").is_file()
    }
    pub fn layer_meta(&self, chain: &Digest) -> Result<LayerMeta> {
        let p = self.layer_root(chain).join("meta.json");
        let data = fs::read(&p).map_err(|_| Error::Missing {
            what: "unpacked layer (chain ID)".into(),
            digest: chain.to_string(),
            source_name: "the store".into(),
        })?;
        serde_json::from_slice(&data).map_err(|e| malformed(p.display().to_string(), e))
    }
    /// Renames a staged layer dir (fs/ + meta.json) into place; false if another import won.
    pub fn put_layer(&self, staged: &Path, chain: &Digest) -> Result<bool> {
        let dst = self.layer_root(chain);
        if self.has_layer(chain) {
            return Ok(false);
        }
        if dst.exists() {
            // a half-made dir left by a crash: nothing refers to it, replace it
            remove_tree(&dst).ctx(|| format!("remove stale {}", dst.display()))?;
        }
        match fs::rename(staged, &dst) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                Ok(false)
            }
            Err(e) => Err(Error::Io {
                context: format!("store layer {chain}"),
                source: e,
            }),
        }
    }

    // ------------------------------------------------------------------ refs
    pub fn refs(&self) -> Result<BTreeMap<String, Digest>> {
        let p = self.root.join("refs.json");
        match fs::read(&p) {
            Ok(d) => Ok(serde_json::from_slice::<RefsFile>(&d)
                .map_err(|e| malformed(p.display().to_string(), e))?
                .refs),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::Io {
                context: format!("read {}", p.display()),
                source: e,
            }),
        }
    }
    /// Read-modify-write of the refs under their own lock.
    pub fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Digest>) -> Result<T>,
    ) -> Result<T> {
        let _l = self.lock("refs.lock", true)?;
        let mut refs = self.refs()?;
        let out = f(&mut refs)?;
        let data = serde_json::to_vec_pretty(&RefsFile { refs }).expect("serialize refs");
        atomic_write(&self.root.join("refs.json"), &data)?;
        Ok(out)
    }

    /// Finds an image by ref (with or without `:latest`), or by a prefix of its id (config
    /// digest) or manifest digest. Returns (ref if any, manifest digest).
    pub fn resolve(&self, name: &str) -> Result<(Option<String>, Digest)> {
        let refs = self.refs()?;
        for n in [name.to_string(), normalize_ref(name)] {
            if let Some(d) = refs.get(&n) {
                return Ok((Some(n), d.clone()));
            }
        }
        let hexpart = name.strip_prefix("sha256:").unwrap_or(name);
        if hexpart.len() >= 4 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (r, m) in &refs {
                if m.hex().starts_with(hexpart) {
                    return Ok((Some(r.clone()), m.clone()));
                }
                if let Ok(man) = self.manifest(m) {
                    if man.config.digest.hex().starts_with(hexpart) {
                        return Ok((Some(r.clone()), m.clone()));
                    }
                }
            }
        }
        Err(Error::NoImage(name.to_string()))
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
}

/// The key of a foreign layer's dir when it was skipped (its blob not in the source): an
/// empty dir, and the layers above it unpacked over the stack without it, kept apart from
/// the real layer's chain so that an import that has the blob later unpacks it (and the
/// layers above it) for real.
pub fn skipped_chain(chain: &Digest) -> Digest {
    Digest::of_bytes(format!("skipped foreign layer {chain}").as_bytes())
}

//! `bundle`, `rm`, and the container records behind `ls` and `commit`. A bundle is
//! DIR/config.json + DIR/rootfs, where rootfs is an overlay of the image's shared layer dirs
//! (read-only lower dirs) and the container's own upper dir STORE/containers/ID/upper.
use crate::copy::merge_layers;
use crate::digest::Digest;
use crate::error::{malformed, Error, IoContext, Result};
use crate::mount_targets;
use crate::runtime_spec::{self, Options};
use crate::store::{atomic_write, remove_tree, Store};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub image: String,
    pub manifest: Digest,
    pub config: Digest,
    /// diff_ids of the image's layers, bottom first
    pub layers: Vec<Digest>,
    /// true for a `--copy` bundle (plain rootfs, no upper dir)
    pub copy: bool,
    pub created: String,
    /// the rootfs has a layer of mount targets between the image and the upper dir
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// overlay `volatile`: no syncs of the upper dir (a build step's, disposable)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volatile: bool,
}

impl Container {
    pub fn dir(&self, store: &Store) -> PathBuf {
        store.containers_dir().join(&self.id)
    }
    pub fn upper(&self, store: &Store) -> PathBuf {
        self.dir(store).join("upper")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
    /// The mount-target layer (`init`), when the bundle has one.
    pub fn init_dir(&self, store: &Store) -> PathBuf {
        self.dir(store).join("init")
    }
}

pub struct BundleOptions {
    pub copy: bool,
    pub cmd: Option<Vec<String>>,
    pub tty: bool,
    /// write config.json from the image (off when the caller writes its own)
    pub spec: bool,
    /// put the runtime's mount targets the image lacks (/dev, /proc, /sys, /etc/hosts,
    /// /etc/hostname, /etc/resolv.conf) in a layer of their own below the upper dir, so that
    /// the runtime creating them leaves nothing in the writable layer (what a build commits)
    pub mount_targets: bool,
    /// mount the overlay `volatile` (no syncs of the upper dir: copy-ups do not fsync each
    /// file); for bundles whose writable layer is thrown away or committed right after
    pub volatile: bool,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            copy: false,
            cmd: None,
            tty: false,
            spec: true,
            mount_targets: false,
            volatile: false,
        }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn new_id(bundle: &Path) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Digest::of_bytes(format!("{}:{t}:{}", bundle.display(), std::process::id()).as_bytes()).hex()
        [..16]
        .to_string()
}

/// Mounted? (looks the path up in /proc/self/mountinfo)
pub fn is_mounted(path: &Path) -> bool {
    capsa_linux::mountinfo::is_mount_point(path)
}

/// Mounts the overlay of `c`'s layers and upper dir on its bundle's rootfs.
pub fn mount_rootfs(store: &Store, c: &Container) -> Result<()> {
    let mut lowers: Vec<String> = Vec::new();
    if c.init {
        lowers.push(c.init_dir(store).display().to_string());
    }
    if c.layers.is_empty() {
        lowers.push(store.root.join("empty").display().to_string());
    } else {
        lowers.extend(
            store
                .layer_dirs(&c.layers)
                .iter()
                .rev()
                .map(|d| d.display().to_string()),
        );
    }
    for l in &lowers {
        if l.contains(',') || l.contains(':') {
            return Err(Error::Invalid(format!(
                "store path {l:?} contains ',' or ':', which overlay cannot take"
            )));
        }
    }
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
        lowers.join(":"),
        c.upper(store).display(),
        c.dir(store).join("work").display()
    );
    if c.volatile {
        opts.push_str(",volatile");
    }
    if opts.len() > 4000 {
        return Err(Error::Invalid(format!(
            "image has too many layers ({}) for one overlay mount option string",
            c.layers.len()
        )));
    }
    sys::mount_overlay(&c.rootfs(), &opts)
        .ctx(|| format!("mount overlay on {}", c.rootfs().display()))
}

/// Creates the bundle `dir` for `image`.
pub fn create(store: &Store, image: &str, dir: &Path, opts: &BundleOptions) -> Result<Container> {
    let _lock = store.lock_shared()?;
    let (name, md) = store.resolve(image)?;
    create_for(
        store,
        &name.unwrap_or_else(|| image.to_string()),
        &md,
        dir,
        opts,
    )
}

/// Creates the bundle `dir` for the image whose manifest is `md` (stored, with or without a
/// ref), recorded as `image`. The caller holds the store lock.
pub fn create_for(
    store: &Store,
    image: &str,
    md: &Digest,
    dir: &Path,
    opts: &BundleOptions,
) -> Result<Container> {
    let md = md.clone();
    let manifest = store.manifest(&md)?;
    let config = store.config(&manifest.config.digest)?;
    for (d, chain) in config
        .rootfs
        .diff_ids
        .iter()
        .zip(store.chains(&config.rootfs.diff_ids))
    {
        if !store.has_layer(&chain) {
            return Err(Error::Missing {
                what: format!("unpacked layer (chain ID {chain}) of diff_id"),
                digest: d.to_string(),
                source_name: "the store (run gc? re-import the image)".into(),
            });
        }
    }
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .ctx(|| format!("read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::Invalid(format!(
                "bundle directory {} exists and is not empty",
                dir.display()
            )));
        }
    }
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let dir = fs::canonicalize(dir).ctx(|| format!("resolve {}", dir.display()))?;
    let c = Container {
        id: new_id(&dir),
        bundle: dir.clone(),
        image: image.to_string(),
        manifest: md,
        config: manifest.config.digest.clone(),
        layers: config.rootfs.diff_ids.clone(),
        copy: opts.copy,
        created: now_rfc3339(),
        init: opts.mount_targets && !opts.copy,
        volatile: opts.volatile && !opts.copy,
    };
    // undo everything made so far if a later step fails
    struct Undo<'a> {
        store: &'a Store,
        c: &'a Container,
        armed: bool,
    }
    impl Drop for Undo<'_> {
        fn drop(&mut self) {
            if self.armed {
                if is_mounted(&self.c.rootfs()) {
                    let _ = sys::umount(&self.c.rootfs());
                }
                if !is_mounted(&self.c.rootfs()) {
                    let _ = remove_tree(&self.c.bundle);
                }
                let _ = remove_tree(&self.c.dir(self.store));
            }
        }
    }
    let mut undo = Undo {
        store,
        c: &c,
        armed: true,
    };
    let rootfs = c.rootfs();
    fs::create_dir(&rootfs).ctx(|| format!("create {}", rootfs.display()))?;
    let cdir = c.dir(store);
    fs::create_dir(&cdir).ctx(|| format!("create {}", cdir.display()))?;
    let layer_dirs: Vec<PathBuf> = store.layer_dirs(&c.layers);
    if opts.copy {
        merge_layers(&layer_dirs, &rootfs)
            .ctx(|| format!("copy layers into {}", rootfs.display()))?;
    } else {
        let upper = c.upper(store);
        fs::create_dir(&upper).ctx(|| format!("create {}", upper.display()))?;
        fs::create_dir(cdir.join("work")).ctx(|| "create work dir")?;
        // the merged root takes its attributes from the upper dir: give it the image's
        if let Some(top) = layer_dirs.last() {
            let st = sys::fstat(sys::open_dir(top).ctx(|| "open top layer")?.as_raw_fd())
                .ctx(|| "stat top layer")?;
            std::os::unix::fs::chown(&upper, Some(st.st_uid), Some(st.st_gid))
                .ctx(|| "chown upper")?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&upper, fs::Permissions::from_mode(st.st_mode & 0o7777))
                .ctx(|| "chmod upper")?;
            let ufd = sys::open_dir(&upper).ctx(|| "open upper")?;
            let times = (
                (st.st_atime, st.st_atime_nsec),
                (st.st_mtime, st.st_mtime_nsec),
            );
            sys::futimens(ufd.as_raw_fd(), times.0, times.1).ctx(|| "set upper times")?;
        }
        if c.init {
            mount_targets::make(&layer_dirs, &c.init_dir(store))
                .ctx(|| format!("make mount targets in {}", c.init_dir(store).display()))?;
        }
        mount_rootfs(store, &c)?;
    }
    if opts.spec {
        let spec = runtime_spec::generate(
            &config,
            &rootfs,
            &Options {
                cmd: opts.cmd.clone(),
                tty: opts.tty,
            },
        )?;
        let mut spec_bytes = serde_json::to_vec_pretty(&spec).expect("serialize spec");
        spec_bytes.push(b'\n');
        atomic_write(&dir.join("config.json"), &spec_bytes)?;
    }
    atomic_write(
        &cdir.join("container.json"),
        &serde_json::to_vec_pretty(&c).expect("serialize"),
    )?;
    undo.armed = false;
    drop(undo);
    Ok(c)
}

pub fn list(store: &Store) -> Result<Vec<Container>> {
    let mut out = Vec::new();
    let dir = store.containers_dir();
    for e in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
        let p = e.ctx(|| "read containers")?.path().join("container.json");
        if let Ok(data) = fs::read(&p) {
            out.push(
                serde_json::from_slice(&data).map_err(|e| malformed(p.display().to_string(), e))?,
            );
        }
    }
    out.sort_by(|a: &Container, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Finds a container by bundle path or id (prefix).
pub fn find(store: &Store, what: &str) -> Result<Container> {
    let path = fs::canonicalize(what).ok();
    let all = list(store)?;
    if let Some(p) = path {
        if let Some(c) = all.iter().find(|c| c.bundle == p) {
            return Ok(c.clone());
        }
    }
    let m: Vec<_> = all.iter().filter(|c| c.id.starts_with(what)).collect();
    match m.as_slice() {
        [c] if !what.is_empty() => Ok((*c).clone()),
        _ => Err(Error::Invalid(format!(
            "no bundle made by capsa-image at {what:?}"
        ))),
    }
}

/// Unmounts and removes a bundle and its writable layer.
pub fn remove(store: &Store, what: &str) -> Result<Container> {
    let c = find(store, what)?;
    let rootfs = c.rootfs();
    if is_mounted(&rootfs) {
        sys::umount(&rootfs).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                Error::Invalid(format!(
                    "{} is busy: is a container still running from this bundle? ({e})",
                    rootfs.display()
                ))
            } else {
                Error::Io {
                    context: format!("unmount {}", rootfs.display()),
                    source: e,
                }
            }
        })?;
    }
    if is_mounted(&rootfs) {
        return Err(Error::Invalid(format!(
            "{} is still mounted",
            rootfs.display()
        )));
    }
    remove_tree(&c.bundle).ctx(|| format!("remove {}", c.bundle.display()))?;
    remove_tree(&c.dir(store)).ctx(|| format!("remove {}", c.dir(store).display()))?;
    Ok(c)
}

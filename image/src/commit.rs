//! `commit`: the container's upper dir becomes a new gzip layer on top of its image's layers.
//! Overlay's whiteouts (0:0 char devices) become `.wh.NAME` entries, opaque directories
//! (trusted.overlay.opaque=y) get a `.wh..wh..opq` entry; the new image shares every old layer.
use crate::bundle::{self, now_rfc3339, Container};
use crate::digest::{Digest, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::oci::{Descriptor, History, ImageConfig, Manifest};
use crate::size::disk_usage;
use crate::store::{normalize_ref, LayerMeta, Store};
use crate::sys;
use crate::unpack::{unpack_layer, xattr_allowed, OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub struct Committed {
    pub name: String,
    pub manifest: Digest,
    pub config: Digest,
    pub layer: Digest,
    pub diff_id: Digest,
}

struct LayerWriter<W: Write> {
    tar: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn header_for(st: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> LayerWriter<W> {
    fn pax(&mut self, dir: RawFd, name: &OsStr) -> io::Result<()> {
        let x = sys::lxattrs(dir, name)?;
        let keys: Vec<(String, Vec<u8>)> = x
            .into_iter()
            .filter(|(k, _)| xattr_allowed(k.as_bytes()))
            .map(|(k, v)| (format!("SCHILY.xattr.{}", k.to_string_lossy()), v))
            .collect();
        if !keys.is_empty() {
            self.tar
                .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        Ok(())
    }

    fn walk(&mut self, dir: &OwnedFd, prefix: &[u8]) -> io::Result<()> {
        let mut names = sys::list_dir(dir)?;
        names.sort();
        let d = dir.as_raw_fd();
        for name in names {
            let st = sys::fstatat(d, &name)?;
            let fmt = st.st_mode & libc::S_IFMT;
            let mut path = prefix.to_vec();
            path.extend_from_slice(name.as_bytes());
            let p = Path::new(OsStr::from_bytes(&path));
            if fmt == libc::S_IFCHR && st.st_rdev == 0 {
                // overlay whiteout -> .wh.NAME
                let mut wh = prefix.to_vec();
                wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                wh.extend_from_slice(name.as_bytes());
                let mut h = header_for(&st, tar::EntryType::Regular);
                h.set_mode(0o644);
                self.tar
                    .append_data(&mut h, Path::new(OsStr::from_bytes(&wh)), io::empty())?;
                continue;
            }
            match fmt {
                libc::S_IFDIR => {
                    self.pax(d, &name)?;
                    let mut h = header_for(&st, tar::EntryType::Directory);
                    let mut dp = path.clone();
                    dp.push(b'/');
                    self.tar
                        .append_data(&mut h, Path::new(OsStr::from_bytes(&dp)), io::empty())?;
                    if sys::lgetxattr(d, &name, OPAQUE_XATTR)?.as_deref() == Some(b"y") {
                        let mut op = dp.clone();
                        op.extend_from_slice(OPAQUE_MARKER.as_bytes());
                        let mut h = header_for(&st, tar::EntryType::Regular);
                        h.set_mode(0o644);
                        self.tar.append_data(
                            &mut h,
                            Path::new(OsStr::from_bytes(&op)),
                            io::empty(),
                        )?;
                    }
                    let sub = sys::openat(
                        d,
                        &name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    self.walk(&sub, &dp)?;
                }
                _ => {
                    if st.st_nlink > 1 {
                        if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                            let first = first.clone();
                            let mut h = header_for(&st, tar::EntryType::Link);
                            self.tar.append_link(
                                &mut h,
                                p,
                                Path::new(OsStr::from_bytes(&first)),
                            )?;
                            continue;
                        }
                        self.links.insert((st.st_dev, st.st_ino), path.clone());
                    }
                    self.pax(d, &name)?;
                    match fmt {
                        libc::S_IFREG => {
                            let f = sys::openat(d, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                            let mut h = header_for(&st, tar::EntryType::Regular);
                            h.set_size(st.st_size as u64);
                            self.tar.append_data(&mut h, p, File::from(f))?;
                        }
                        libc::S_IFLNK => {
                            let target = sys::readlinkat(d, &name)?;
                            let mut h = header_for(&st, tar::EntryType::Symlink);
                            self.tar.append_link(&mut h, p, Path::new(&target))?;
                        }
                        _ => {
                            let kind = match fmt {
                                libc::S_IFCHR => tar::EntryType::Char,
                                libc::S_IFBLK => tar::EntryType::Block,
                                libc::S_IFIFO => tar::EntryType::Fifo,
                                _ => continue, // sockets are not kept in images
                            };
                            let mut h = header_for(&st, kind);
                            let (ma, mi) = sys::major_minor(st.st_rdev);
                            h.set_device_major(ma)?;
                            h.set_device_minor(mi)?;
                            self.tar.append_data(&mut h, p, io::empty())?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes `upper` as a gzip layer tar to `out`; returns (diff_id, blob digest, blob size).
pub fn write_layer(upper: &Path, out: &Path) -> Result<(Digest, Digest, u64)> {
    let f = File::create(out).ctx(|| format!("create {}", out.display()))?;
    let compressed = HashWriter::new(io::BufWriter::with_capacity(1 << 20, f));
    let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::default());
    let uncompressed = HashWriter::new(gz);
    let mut lw = LayerWriter {
        tar: tar::Builder::new(uncompressed),
        links: HashMap::new(),
    };
    let root = sys::open_dir(upper).ctx(|| format!("open {}", upper.display()))?;
    lw.walk(&root, b"")
        .ctx(|| format!("read {}", upper.display()))?;
    let uncompressed = lw.tar.into_inner().ctx(|| "finish layer tar")?;
    let (gz, diff_id, _) = uncompressed.finish();
    let compressed = gz.finish().ctx(|| "finish gzip")?;
    let (mut bw, digest, size) = compressed.finish();
    bw.flush().ctx(|| format!("write {}", out.display()))?;
    bw.get_ref()
        .sync_all()
        .ctx(|| format!("sync {}", out.display()))?;
    Ok((diff_id, digest, size))
}

/// A layer made from a container's upper dir, stored (blob and unpacked dir).
pub struct NewLayer {
    pub diff_id: Digest,
    /// the gzip blob's descriptor, for the manifest
    pub descriptor: Descriptor,
}

/// Where the store's unpacked copy of a committed layer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerFrom {
    /// unpacked from the blob just written, as an import would (the bundle stays usable)
    Blob,
    /// the bundle's upper dir itself, moved into the store once what a layer never holds is
    /// taken out of it (overlay's own xattrs, sockets): no second write of every file. The
    /// bundle is unmounted and can only be removed afterwards (a build step's bundle).
    MoveUpper,
}

/// Takes out of an upper dir what `write_layer` leaves out of a layer: overlay's own xattrs
/// (but opaque markers), SELinux labels and NFSv4 ACLs, sockets. What stays is the layer the
/// blob holds, in the store's (overlay) format.
fn clean_upper(dir: &OwnedFd) -> io::Result<()> {
    let d = dir.as_raw_fd();
    let strip = |name: &OsStr| -> io::Result<()> {
        for (k, _) in sys::lxattrs(d, name)? {
            if k.as_c_str() != OPAQUE_XATTR && !xattr_allowed(k.as_bytes()) {
                sys::lremovexattr(d, name, &k)?;
            }
        }
        Ok(())
    };
    for name in sys::list_dir(dir)? {
        let st = sys::fstatat(d, &name)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFSOCK => {
                sys::unlinkat(d, &name, false)?;
                continue;
            }
            libc::S_IFDIR => {
                let sub = sys::openat(
                    d,
                    &name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                clean_upper(&sub)?;
            }
            _ => {}
        }
        strip(&name)?;
    }
    Ok(())
}

/// Writes `c`'s writable layer as a gzip layer blob and puts the layer, unpacked, into the
/// store (`from` says how); both land in the store before this returns.
pub fn commit_layer(store: &Store, c: &Container, from: LayerFrom) -> Result<NewLayer> {
    if c.copy {
        return Err(Error::Invalid(format!(
            "{} is a --copy bundle: it has no writable layer to commit",
            c.bundle.display()
        )));
    }
    let staging = store.tmp_dir("commit")?;
    let blob = staging.path().join("layer.tar.gz");
    let upper = c.upper(store);
    let (diff_id, digest, size) = write_layer(&upper, &blob)?;

    let layer_dir = staging.path().join("layer");
    let fs_dir = layer_dir.join("fs");
    // stored by chain ID: the new layer over the container's layers
    let chain = Digest::chain_step(store.chains(&c.layers).last(), &diff_id);
    if !store.has_layer(&chain) {
        match from {
            // unpack the new layer from the blob just written: the same path as an import
            LayerFrom::Blob => {
                fs::create_dir_all(&fs_dir).ctx(|| format!("create {}", fs_dir.display()))?;
                let mut lowers = store.layer_dirs(&c.layers);
                lowers.reverse();
                let f = File::open(&blob).ctx(|| format!("open {}", blob.display()))?;
                unpack_layer(f, &fs_dir, digest.as_str(), Some(&diff_id), &lowers).0?;
            }
            LayerFrom::MoveUpper => {
                let rootfs = c.rootfs();
                if bundle::is_mounted(&rootfs) {
                    sys::umount(&rootfs).ctx(|| format!("unmount {}", rootfs.display()))?;
                }
                let root = sys::open_dir(&upper).ctx(|| format!("open {}", upper.display()))?;
                clean_upper(&root)
                    .and_then(|_| {
                        for (k, _) in sys::lxattrs(root.as_raw_fd(), OsStr::new("."))? {
                            if k.as_c_str() != OPAQUE_XATTR && !xattr_allowed(k.as_bytes()) {
                                sys::lremovexattr(root.as_raw_fd(), OsStr::new("."), &k)?;
                            }
                        }
                        Ok(())
                    })
                    .ctx(|| format!("clean {}", upper.display()))?;
                drop(root);
                fs::create_dir_all(&layer_dir).ctx(|| format!("create {}", layer_dir.display()))?;
                fs::rename(&upper, &fs_dir)
                    .ctx(|| format!("move {} to {}", upper.display(), fs_dir.display()))?;
            }
        }
        let meta = LayerMeta {
            diff_id: diff_id.clone(),
            size: disk_usage(&fs_dir).ctx(|| "size of new layer")?,
        };
        fs::write(
            layer_dir.join("meta.json"),
            serde_json::to_vec(&meta).expect("meta"),
        )
        .ctx(|| "write layer meta")?;
    }
    store.put_blob_file(&blob, &digest)?;
    if fs_dir.exists() {
        store.put_layer(&layer_dir, &chain)?;
    }
    Ok(NewLayer {
        diff_id,
        descriptor: Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest,
            size,
            annotations: None,
            platform: None,
            urls: None,
        },
    })
}

/// Stores `config` and `manifest` (its config descriptor pointed at `config`) as blobs;
/// returns (manifest digest, config digest). No ref is written.
pub fn store_image(
    store: &Store,
    manifest: &Manifest,
    config: &ImageConfig,
) -> Result<(Digest, Digest)> {
    let config_bytes = serde_json::to_vec(config).expect("serialize config");
    let mut m = manifest.clone();
    m.config.digest = Digest::of_bytes(&config_bytes);
    m.config.size = config_bytes.len() as u64;
    let manifest_bytes = serde_json::to_vec(&m).expect("serialize manifest");
    let cd = store.put_blob_bytes(&config_bytes)?;
    let md = store.put_blob_bytes(&manifest_bytes)?;
    Ok((md, cd))
}

pub fn commit(
    store: &Store,
    bundle_ref: &str,
    new_ref: &str,
    message: Option<&str>,
) -> Result<Committed> {
    let _lock = store.lock_shared()?;
    let c = bundle::find(store, bundle_ref)?;
    let manifest = store.manifest(&c.manifest)?;
    let mut config = store.config(&manifest.config.digest)?;
    let layer = commit_layer(store, &c, LayerFrom::Blob)?;

    let now = now_rfc3339();
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.push(History {
        created: Some(now.clone()),
        created_by: Some(format!("capsa-image commit {}", c.bundle.display())),
        comment: message.map(String::from),
        ..Default::default()
    });
    config.created = Some(now);
    let mut m = manifest.clone();
    m.layers.push(layer.descriptor.clone());
    let (md, config_digest) = store_image(store, &m, &config)?;
    let name = normalize_ref(new_ref);
    store.update_refs(|refs| {
        refs.insert(name.clone(), md.clone());
        Ok(())
    })?;
    Ok(Committed {
        name,
        manifest: md,
        config: config_digest,
        layer: layer.descriptor.digest,
        diff_id: layer.diff_id,
    })
}

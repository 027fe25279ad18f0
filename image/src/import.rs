//! `import`: OCI image layout (dir), oci-archive and docker-archive (tar, optionally
//! compressed). Everything is staged under STORE/tmp and verified (blob digests, diff_ids)
//! before anything is moved into the store; a failed import leaves the store as it was.
use crate::compress::{decompress, Compression};
use crate::digest::{Digest, HashReader};
use crate::error::{malformed, Error, IoContext, Result};
use crate::oci::*;
use crate::size::disk_usage;
use crate::store::{normalize_ref, skipped_chain, LayerMeta, Store, TempDir};
use crate::unpack::{clean_path, unpack_layer};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Result of importing one image.
#[derive(Debug, Clone)]
pub struct Imported {
    pub name: String,
    pub manifest: Digest,
    pub config: Digest,
    /// layer blobs downloaded (a pull's; 0 for an import)
    pub layers_fetched: usize,
    pub layers_unpacked: usize,
    pub layers_reused: usize,
    /// what the user should know: foreign layers skipped
    pub notes: Vec<String>,
}

/// The note for a foreign (non-distributable) layer skipped because its blob is not there.
pub(crate) fn foreign_note(desc: &Descriptor, source: &str) -> String {
    let urls = desc.urls.as_deref().unwrap_or_default();
    format!(
        "layer {} is a foreign (non-distributable) layer{} and its blob is not in {source}: \
         skipped, the rootfs has none of its files",
        desc.digest,
        if urls.is_empty() {
            String::new()
        } else {
            format!(" (urls: {})", urls.join(", "))
        }
    )
}

/// Where the blobs of the source live.
enum Blobs {
    /// an OCI layout directory: blobs/sha256/<hex>, verified while read
    Dir(PathBuf),
    /// files staged from an archive, verified while staged: digest -> file
    Staged(HashMap<Digest, PathBuf>),
}

struct Source {
    name: String,
    blobs: Blobs,
}

impl Source {
    fn missing(&self, what: &str, d: &Digest) -> Error {
        Error::Missing {
            what: what.into(),
            digest: d.to_string(),
            source_name: self.name.clone(),
        }
    }
    fn path(&self, d: &Digest) -> Option<PathBuf> {
        match &self.blobs {
            Blobs::Dir(root) => {
                Some(root.join("blobs/sha256").join(d.hex())).filter(|p| p.is_file())
            }
            Blobs::Staged(m) => m.get(d).cloned(),
        }
    }
    /// Reads a small JSON blob, checking its digest.
    fn read_small(&self, what: &str, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d).ok_or_else(|| self.missing(what, d))?;
        let data = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        let got = Digest::of_bytes(&data);
        if &got != d {
            return Err(Error::DigestMismatch {
                what: format!("{what} in {}", self.name),
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(data)
    }
}

/// Reader that copies what it reads into a file (a blob being stored while it is unpacked).
struct Tee<R> {
    inner: R,
    out: Option<io::BufWriter<File>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(o) = self.out.as_mut() {
            o.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

pub(crate) struct Plan {
    pub name: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub config_bytes: Vec<u8>,
    pub config_digest: Digest,
    /// (blob descriptor, diff_id), bottom layer first
    pub layers: Vec<(Descriptor, Digest)>,
}

/// Imports every image found at `src` (layout dir or archive). `name` renames the image
/// (the source must then hold exactly one).
pub fn import(store: &Store, src: &Path, name: Option<&str>) -> Result<Vec<Imported>> {
    let _lock = store.lock_shared()?;
    let staging = store.tmp_dir("import")?;
    let (source, mut plans) = if src.is_dir() {
        if !src.join("oci-layout").is_file() {
            return Err(malformed(
                src.display().to_string(),
                "directory has no oci-layout file",
            ));
        }
        let data = fs::read(src.join("index.json"))
            .ctx(|| format!("read {}/index.json", src.display()))?;
        let index = read_index(&data, src)?;
        let source = Source {
            name: src.display().to_string(),
            blobs: Blobs::Dir(src.to_path_buf()),
        };
        let plans = plans_from_index(&source, &index, src)?;
        (source, plans)
    } else {
        stage_archive(src, &staging)?
    };
    if let Some(n) = name {
        if plans.len() != 1 {
            return Err(Error::Invalid(format!(
                "{} holds {} images; --name needs exactly one",
                source.name,
                plans.len()
            )));
        }
        plans[0].name = normalize_ref(n);
    }
    commit_import(store, &source, plans, &staging)
}

fn read_index(data: &[u8], src: &Path) -> Result<Index> {
    serde_json::from_slice(data).map_err(|e| malformed(format!("{}: index.json", src.display()), e))
}

fn base_name(src: &Path) -> String {
    let f = src.file_name().and_then(|s| s.to_str()).unwrap_or("image");
    let f = f
        .trim_end_matches(".tar.gz")
        .trim_end_matches(".tgz")
        .trim_end_matches(".tar")
        .trim_end_matches(".oci")
        .trim_end_matches(".docker");
    f.to_string()
}

fn plans_from_index(source: &Source, index: &Index, src: &Path) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for desc in &index.manifests {
        let ann = desc.annotations.clone().unwrap_or_default();
        let refname = ann
            .get(ANN_CONTAINERD_NAME)
            .or_else(|| ann.get(ANN_REF_NAME))
            .cloned();
        let refname = match refname {
            Some(r) if r.contains('/') || r.contains(':') => normalize_ref(&r),
            Some(tag) => format!("{}:{tag}", base_name(src)),
            None => normalize_ref(&base_name(src)),
        };
        let manifest_digest = pick_manifest(source, desc)?;
        plans.push(plan_from_manifest(source, refname, &manifest_digest)?);
    }
    if plans.is_empty() {
        return Err(malformed(source.name.clone(), "index.json lists no image"));
    }
    Ok(plans)
}

/// Follows an image index to the manifest for this host's platform.
fn pick_manifest(source: &Source, desc: &Descriptor) -> Result<Digest> {
    if desc.media_type == MT_INDEX || desc.media_type == MT_DOCKER_LIST {
        let data = source.read_small("image index", &desc.digest)?;
        let idx: Index = serde_json::from_slice(&data)
            .map_err(|e| malformed(format!("index {}", desc.digest), e))?;
        let arch = host_arch();
        let m = idx
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| idx.manifests.iter().find(|m| m.platform.is_none()))
            .ok_or_else(|| {
                Error::Invalid(format!("index {} has no linux/{arch} image", desc.digest))
            })?;
        return pick_manifest(source, m);
    }
    Ok(desc.digest.clone())
}

fn plan_from_manifest(source: &Source, name: String, md: &Digest) -> Result<Plan> {
    let manifest_bytes = source.read_small("manifest", md)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| malformed(format!("manifest {md}"), e))?;
    let config_bytes = source.read_small("config", &manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("config {}", manifest.config.digest), e))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(malformed(
            format!("image {name}"),
            format!(
                "manifest has {} layers but config has {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .cloned()
        .zip(config.rootfs.diff_ids.iter().cloned())
        .collect();
    Ok(Plan {
        name,
        manifest_digest: md.clone(),
        manifest_bytes,
        config_digest: manifest.config.digest.clone(),
        config_bytes,
        layers,
    })
}

/// The files of an archive staged under the staging dir: archive path -> (file, sha256).
type StagedFiles = HashMap<String, (PathBuf, Digest)>;

/// Streams an archive once, staging every file with its sha256; then reads it as an OCI
/// archive (oci-layout + index.json) or a docker-archive (manifest.json).
fn stage_archive(src: &Path, staging: &TempDir) -> Result<(Source, Vec<Plan>)> {
    let name = src.display().to_string();
    let files = stage_files(src, staging)?;
    let by_digest: HashMap<Digest, PathBuf> = files
        .values()
        .map(|(p, d)| (d.clone(), p.clone()))
        .collect();
    let source = Source {
        name: name.clone(),
        blobs: Blobs::Staged(by_digest),
    };
    if files.contains_key("oci-layout") && files.contains_key("index.json") {
        let index = read_index(
            &fs::read(&files["index.json"].0).ctx(|| "read index.json")?,
            src,
        )?;
        let plans = plans_from_index(&source, &index, src)?;
        return Ok((source, plans));
    }
    let Some((mpath, _)) = files.get("manifest.json") else {
        return Err(archive_error(
            &name,
            "neither an OCI archive (oci-layout, index.json) nor a docker-archive (manifest.json)",
        ));
    };
    let entries: Vec<DockerArchiveEntry> =
        serde_json::from_slice(&fs::read(mpath).ctx(|| "read manifest.json")?)
            .map_err(|e| archive_error(&name, format!("manifest.json: {e}")))?;
    let mut plans = Vec::new();
    for ent in entries {
        plans.extend(plans_from_docker_entry(&name, src, &files, &ent)?);
    }
    if plans.is_empty() {
        return Err(archive_error(&name, "manifest.json lists no image"));
    }
    Ok((source, plans))
}

fn archive_error(name: &str, reason: impl std::fmt::Display) -> Error {
    malformed(format!("archive {name}"), reason)
}

/// The tar walk: every regular file copied to the staging dir and hashed (a
/// `blobs/sha256/<hex>` checked against its name), then the links pointed at the files they
/// name.
fn stage_files(src: &Path, staging: &TempDir) -> Result<StagedFiles> {
    let name = src.display().to_string();
    let bad = |reason: String| archive_error(&name, reason);
    let f = File::open(src).ctx(|| format!("open {name}"))?;
    let (_, r) = decompress(f).ctx(|| format!("read {name}"))?;
    let mut ar = tar::Archive::new(r);
    let mut files = StagedFiles::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut n = 0;
    for e in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut e = e.map_err(|e| bad(format!("tar: {e}")))?;
        let raw = e.path_bytes().into_owned();
        let comps = clean_path(&raw)
            .map_err(|r| bad(format!("entry {:?}: {r}", String::from_utf8_lossy(&raw))))?;
        let path = comps
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                n += 1;
                let dst = staging.path().join(format!("f{n}"));
                let d = stage_file(&name, &path, &mut e, &dst)?;
                files.insert(path, (dst, d));
            }
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let t = e
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                // a symlink's target is relative to its own dir, a hardlink's to the root
                let base = match kind {
                    tar::EntryType::Symlink => &comps[..comps.len().saturating_sub(1)],
                    _ => &[][..],
                };
                let target = archive_link_target(base, &t)
                    .ok_or_else(|| bad(format!("link {path} escapes the archive")))?;
                links.insert(path, target);
            }
            _ => {}
        }
    }
    // docker save links duplicate layers: <id>/layer.tar -> ../<other>/layer.tar
    for (l, t) in &links {
        if let Some(v) = files.get(t).cloned() {
            files.insert(l.clone(), v);
        }
    }
    Ok(files)
}

/// Copies one archive file to `dst`, returning its sha256; a `blobs/sha256/<hex>` file must
/// hash to its name.
fn stage_file(name: &str, path: &str, data: &mut impl Read, dst: &Path) -> Result<Digest> {
    let bad = |err: io::Error| archive_error(name, format!("entry {path}: {err}"));
    let mut out =
        io::BufWriter::new(File::create(dst).ctx(|| format!("create {}", dst.display()))?);
    let mut hr = HashReader::new(data);
    io::copy(&mut hr, &mut out).map_err(bad)?;
    out.flush().ctx(|| format!("write {}", dst.display()))?;
    let (d, _) = hr.finish().map_err(bad)?;
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        if hex != d.hex() {
            return Err(Error::DigestMismatch {
                what: format!("blob {path} in {name}"),
                expected: format!("sha256:{hex}"),
                actual: d.to_string(),
            });
        }
    }
    Ok(d)
}

/// The archive path a link names, from the components of the dir it is relative to; None
/// when `..` climbs above the archive's root.
fn archive_link_target(base: &[OsString], target: &[u8]) -> Option<String> {
    let mut parts: Vec<String> = base
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    for c in String::from_utf8_lossy(target).split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_string()),
        }
    }
    Some(parts.join("/"))
}

/// One image of a docker-archive's manifest.json: an OCI manifest is made for it (layer
/// media types from the layers' magic bytes), one plan per RepoTag.
fn plans_from_docker_entry(
    name: &str,
    src: &Path,
    files: &StagedFiles,
    ent: &DockerArchiveEntry,
) -> Result<Vec<Plan>> {
    let lookup = |p: &str, what: &str| {
        files
            .get(p.trim_start_matches("./"))
            .cloned()
            .ok_or_else(|| {
                archive_error(
                    name,
                    format!("manifest.json names {what} {p:?}, not in the archive"),
                )
            })
    };
    let (cpath, cdig) = lookup(&ent.config, "config")?;
    let mut layers = Vec::new();
    for l in &ent.layers {
        let (lp, ld) = lookup(l, "layer")?;
        layers.push(staged_layer_descriptor(&lp, ld)?);
    }
    let config_bytes = fs::read(&cpath).ctx(|| format!("read {}", cpath.display()))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MT_MANIFEST.into()),
        config: Descriptor {
            media_type: MT_CONFIG.into(),
            digest: cdig.clone(),
            size: config_bytes.len() as u64,
            annotations: None,
            platform: None,
            urls: None,
        },
        layers,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("serialize manifest");
    let md = Digest::of_bytes(&manifest_bytes);
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("config {cdig}"), e))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(archive_error(
            name,
            format!(
                "image has {} layers but its config has {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let tags = ent.repo_tags.clone().unwrap_or_default();
    let names = if tags.is_empty() {
        vec![normalize_ref(&base_name(src))]
    } else {
        tags
    };
    let layers: Vec<(Descriptor, Digest)> = manifest
        .layers
        .iter()
        .cloned()
        .zip(config.rootfs.diff_ids.iter().cloned())
        .collect();
    Ok(names
        .iter()
        .map(|n| Plan {
            name: normalize_ref(n),
            manifest_bytes: manifest_bytes.clone(),
            manifest_digest: md.clone(),
            config_bytes: config_bytes.clone(),
            config_digest: cdig.clone(),
            layers: layers.clone(),
        })
        .collect())
}

/// The descriptor of a staged docker-archive layer: size, and media type from its magic bytes.
fn staged_layer_descriptor(path: &Path, digest: Digest) -> Result<Descriptor> {
    let mut head = [0u8; 8];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ctx(|| format!("read {}", path.display()))?;
    let size = fs::metadata(path)
        .ctx(|| format!("stat {}", path.display()))?
        .len();
    Ok(Descriptor {
        media_type: Compression::detect(&head[..n]).layer_media_type().into(),
        digest,
        size,
        annotations: None,
        platform: None,
        urls: None,
    })
}

/// What an import staged: unpacked layer dirs and blob files, each verified.
#[derive(Default)]
pub(crate) struct Staged {
    /// unpacked layer dirs by chain ID
    pub layers: BTreeMap<Digest, PathBuf>,
    pub blobs: BTreeMap<Digest, PathBuf>,
}

fn commit_import(
    store: &Store,
    source: &Source,
    plans: Vec<Plan>,
    staging: &TempDir,
) -> Result<Vec<Imported>> {
    let mut staged = Staged::default();
    let mut results = Vec::new();
    for plan in &plans {
        results.push(stage_plan(store, source, plan, staging, &mut staged)?);
    }
    copy_source_blobs(source, &mut staged, staging)?;
    install(store, &staged, &plans)?;
    Ok(results)
}

/// Unpacks (into staging) the layers of one image that neither the store nor this import
/// has yet, bottom to top.
fn stage_plan(
    store: &Store,
    source: &Source,
    plan: &Plan,
    staging: &TempDir,
    staged: &mut Staged,
) -> Result<Imported> {
    let mut unpacked = 0;
    let mut reused = 0;
    let mut lowers: Vec<PathBuf> = Vec::new();
    let mut notes = Vec::new();
    let mut below: Option<Digest> = None;
    for (desc, diff_id) in &plan.layers {
        // a layer is unpacked over the layers below it: stored (and reused) by chain ID
        let mut chain = Digest::chain_step(below.as_ref(), diff_id);
        let have = |c: &Digest| store.has_layer(c) || staged.layers.contains_key(c);
        // the source's blob, or the one the store (or this import) has already: the same
        // layer over another base
        let blob = source
            .path(&desc.digest)
            .or_else(|| staged.blobs.get(&desc.digest).cloned())
            .or_else(|| {
                store
                    .has_blob(&desc.digest)
                    .then(|| store.blob_path(&desc.digest))
            });
        let have_blob = store.has_blob(&desc.digest) || staged.blobs.contains_key(&desc.digest);
        if desc.is_foreign_layer() && blob.is_none() && !have(&chain) {
            let n = foreign_note(desc, &source.name);
            tracing::warn!("{n}");
            notes.push(n);
            chain = skipped_chain(&chain);
            if !have(&chain) {
                let layer_dir = staging.path().join(format!("layer-{}", chain.hex()));
                fs::create_dir_all(layer_dir.join("fs"))
                    .ctx(|| format!("create {}", layer_dir.display()))?;
                write_layer_meta(&layer_dir, diff_id)?;
                staged.layers.insert(chain.clone(), layer_dir);
            }
        } else if have(&chain) && (have_blob || desc.is_foreign_layer() && blob.is_none()) {
            // stored; a foreign layer's blob may be absent from both
            reused += 1;
        } else {
            let p = blob.ok_or_else(|| source.missing("layer", &desc.digest))?;
            let tmp_blob = staging.path().join(format!("blob-{}", desc.digest.hex()));
            if have(&chain) {
                // the layer is known under another compression: only store the blob
                copy_verified_blob(source, desc, &p, &tmp_blob)?;
                reused += 1;
            } else {
                // a layout's blob is copied into the store while it is unpacked
                let copy_to = (matches!(source.blobs, Blobs::Dir(_)) && !have_blob)
                    .then_some(tmp_blob.as_path());
                let layer_dir = staging.path().join(format!("layer-{}", chain.hex()));
                stage_layer(source, desc, diff_id, &p, copy_to, &layer_dir, &lowers)?;
                staged.layers.insert(chain.clone(), layer_dir);
                unpacked += 1;
            }
            if !have_blob {
                let b = if tmp_blob.exists() { tmp_blob } else { p };
                staged.blobs.insert(desc.digest.clone(), b);
            }
        }
        let dir = staged
            .layers
            .get(&chain)
            .map(|p| p.join("fs"))
            .unwrap_or_else(|| store.layer_fs(&chain));
        lowers.insert(0, dir);
        below = Some(chain);
    }
    Ok(Imported {
        name: plan.name.clone(),
        manifest: plan.manifest_digest.clone(),
        config: plan.config_digest.clone(),
        layers_fetched: 0,
        layers_unpacked: unpacked,
        layers_reused: reused,
        notes,
    })
}

fn blob_mismatch(source_name: &str, desc: &Descriptor, got: Digest) -> Error {
    Error::DigestMismatch {
        what: format!("layer blob in {source_name}"),
        expected: desc.digest.to_string(),
        actual: got.to_string(),
    }
}

/// Copies the layer blob at `src` to `dst`, checking its digest.
fn copy_verified_blob(source: &Source, desc: &Descriptor, src: &Path, dst: &Path) -> Result<()> {
    let f = File::open(src).ctx(|| format!("open {}", src.display()))?;
    let mut hr = HashReader::new(f);
    let mut out = File::create(dst).ctx(|| format!("create {}", dst.display()))?;
    io::copy(&mut hr, &mut out).ctx(|| format!("copy layer {}", desc.digest))?;
    let (got, _) = hr.finish().ctx(|| format!("read layer {}", desc.digest))?;
    if got != desc.digest {
        return Err(blob_mismatch(&source.name, desc, got));
    }
    Ok(())
}

/// Unpacks the layer blob at `src` into `layer_dir/fs` (checking the blob's digest and the
/// diff_id) and writes `layer_dir/meta.json`; with `copy_to`, the blob is copied there on
/// the way.
fn stage_layer(
    source: &Source,
    desc: &Descriptor,
    diff_id: &Digest,
    src: &Path,
    copy_to: Option<&Path>,
    layer_dir: &Path,
    lowers: &[PathBuf],
) -> Result<()> {
    let f = File::open(src).ctx(|| format!("open {}", src.display()))?;
    let out = match copy_to {
        Some(p) => Some(io::BufWriter::with_capacity(
            1 << 20,
            File::create(p).ctx(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    let tee = Tee { inner: f, out };
    let mut tee = unpack_blob(tee, &source.name, desc, diff_id, layer_dir, lowers)?;
    if let (Some(o), Some(p)) = (tee.out.as_mut(), copy_to) {
        o.flush().ctx(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

/// Unpacks the layer blob read from `blob` into `layer_dir/fs`, checks the blob's digest
/// (read to its end) and the diff_id, and writes `layer_dir/meta.json`. Returns the reader,
/// at the blob's end.
pub(crate) fn unpack_blob<R: Read + Send + 'static>(
    blob: R,
    source_name: &str,
    desc: &Descriptor,
    diff_id: &Digest,
    layer_dir: &Path,
    lowers: &[PathBuf],
) -> Result<R> {
    let fs_dir = layer_dir.join("fs");
    fs::create_dir_all(&fs_dir).ctx(|| format!("create {}", fs_dir.display()))?;
    let name = desc.digest.to_string();
    let (res, hr) = unpack_layer(HashReader::new(blob), &fs_dir, &name, Some(diff_id), lowers);
    let hr = hr.ok_or_else(|| Error::Invalid("unpack thread failed".into()))?;
    // check the blob's digest first: a corrupt blob shows as a bad tar or gzip stream too,
    // but the digest names the cause
    let (got, _, blob) = hr
        .finish_into()
        .ctx(|| format!("read layer {}", desc.digest))?;
    if got != desc.digest {
        return Err(blob_mismatch(source_name, desc, got));
    }
    let res = res?;
    tracing::debug!(layer = %desc.digest, compression = ?res.compression, "unpacked");
    write_layer_meta(layer_dir, diff_id)?;
    Ok(blob)
}

/// meta.json beside a staged layer's fs/: its diff_id and disk usage.
pub(crate) fn write_layer_meta(layer_dir: &Path, diff_id: &Digest) -> Result<()> {
    let fs_dir = layer_dir.join("fs");
    let size = disk_usage(&fs_dir).ctx(|| format!("size of {}", fs_dir.display()))?;
    let meta = LayerMeta {
        diff_id: diff_id.clone(),
        size,
    };
    fs::write(
        layer_dir.join("meta.json"),
        serde_json::to_vec(&meta).expect("meta"),
    )
    .ctx(|| "write layer meta")
}

/// A layout's blobs that were not copied into staging on the way are copied now (the
/// source stays untouched; everything else in staging is renamed into the store).
fn copy_source_blobs(source: &Source, staged: &mut Staged, staging: &TempDir) -> Result<()> {
    if !matches!(source.blobs, Blobs::Dir(_)) {
        return Ok(());
    }
    for (d, p) in staged.blobs.iter_mut() {
        if !p.starts_with(staging.path()) {
            let dst = staging.path().join(format!("copy-{}", d.hex()));
            fs::copy(&*p, &dst).ctx(|| format!("copy blob {d}"))?;
            *p = dst;
        }
    }
    Ok(())
}

/// Everything staged and verified: blobs and layers renamed into the store, then the
/// images' configs and manifests, and the refs last.
pub(crate) fn install(store: &Store, staged: &Staged, plans: &[Plan]) -> Result<()> {
    for (d, p) in &staged.blobs {
        store.put_blob_file(p, d)?;
    }
    for (d, p) in &staged.layers {
        store.put_layer(p, d)?;
    }
    for plan in plans {
        store.put_blob_bytes(&plan.config_bytes)?;
        store.put_blob_bytes(&plan.manifest_bytes)?;
    }
    store.update_refs(|refs| {
        for plan in plans {
            refs.insert(plan.name.clone(), plan.manifest_digest.clone());
        }
        Ok(())
    })
}

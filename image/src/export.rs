//! `export`: an image from the store as an OCI layout directory, an oci-archive or a
//! docker-archive (uncompressed layers named by diff_id, as `docker save` writes them), which
//! `ctr images import` and `podman load` accept. Written to a temp name, then renamed.
use crate::compress::decompress;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::oci::*;
use crate::store::{remove_tree, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciDir,
    OciArchive,
    DockerArchive,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "oci" | "oci-dir" => Ok(Format::OciDir),
            "oci-archive" => Ok(Format::OciArchive),
            "docker-archive" | "docker" => Ok(Format::DockerArchive),
            _ => Err(Error::Invalid(format!(
                "unknown export format {s:?} (oci, oci-archive, docker-archive)"
            ))),
        }
    }
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(format!(".tmp{}", std::process::id()));
    PathBuf::from(s)
}

fn index_for(name: &str, md: &Digest, size: u64) -> Index {
    let mut ann = BTreeMap::new();
    ann.insert(ANN_REF_NAME.to_string(), name.to_string());
    ann.insert(ANN_CONTAINERD_NAME.to_string(), name.to_string());
    Index {
        schema_version: 2,
        media_type: Some(MT_INDEX.into()),
        manifests: vec![Descriptor {
            media_type: MT_MANIFEST.into(),
            digest: md.clone(),
            size,
            annotations: Some(ann),
            platform: None,
            urls: None,
        }],
    }
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, src: &Path) -> io::Result<()> {
    let f = File::open(src)?;
    let mut h = tar::Header::new_ustar();
    h.set_size(f.metadata()?.len());
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, f)
}

pub fn export(store: &Store, image: &str, out: &Path, format: Format) -> Result<()> {
    let _lock = store.lock_shared()?;
    let (name, md) = store.resolve(image)?;
    let name = name.unwrap_or_else(|| image.to_string());
    let manifest = store.manifest(&md)?;
    let manifest_size = store.read_blob(&md)?.len() as u64;
    let mut blobs = vec![md.clone(), manifest.config.digest.clone()];
    blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
    for b in &blobs {
        if !store.has_blob(b) {
            return Err(Error::Missing {
                what: "blob".into(),
                digest: b.to_string(),
                source_name: "the store".into(),
            });
        }
    }
    if out.exists() {
        return Err(Error::Invalid(format!("{} already exists", out.display())));
    }
    let tmp = tmp_path(out);
    let _ = remove_tree(&tmp);
    let _ = fs::remove_file(&tmp);
    let index = serde_json::to_vec(&index_for(&name, &md, manifest_size)).expect("index");
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let res = (|| -> Result<()> {
        match format {
            Format::OciDir => {
                fs::create_dir_all(tmp.join("blobs/sha256"))
                    .ctx(|| format!("create {}", tmp.display()))?;
                for b in &blobs {
                    let dst = tmp.join("blobs/sha256").join(b.hex());
                    if fs::hard_link(store.blob_path(b), &dst).is_err() {
                        fs::copy(store.blob_path(b), &dst).ctx(|| format!("copy blob {b}"))?;
                    }
                }
                fs::write(tmp.join("oci-layout"), layout).ctx(|| "write oci-layout")?;
                fs::write(tmp.join("index.json"), &index).ctx(|| "write index.json")?;
            }
            Format::OciArchive => {
                let f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
                let mut t = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, f));
                (|| -> io::Result<()> {
                    add_bytes(&mut t, "oci-layout", layout)?;
                    add_bytes(&mut t, "index.json", &index)?;
                    for b in &blobs {
                        add_file(
                            &mut t,
                            &format!("blobs/sha256/{}", b.hex()),
                            &store.blob_path(b),
                        )?;
                    }
                    t.into_inner()?.flush()
                })()
                .ctx(|| format!("write {}", tmp.display()))?;
            }
            Format::DockerArchive => {
                let config = store.config(&manifest.config.digest)?;
                let staging = store.tmp_dir("export")?;
                let f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
                let mut t = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, f));
                let cfg_name = format!("{}.json", manifest.config.digest.hex());
                add_file(&mut t, &cfg_name, &store.blob_path(&manifest.config.digest))
                    .ctx(|| "write config")?;
                let mut layer_names = Vec::new();
                for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
                    let lname = format!("{}/layer.tar", diff_id.hex());
                    if layer_names.contains(&lname) {
                        layer_names.push(lname);
                        continue;
                    }
                    let plain = staging.path().join(diff_id.hex());
                    let src = File::open(store.blob_path(&l.digest))
                        .ctx(|| format!("open blob {}", l.digest))?;
                    let (_, mut r) = decompress(src).ctx(|| format!("read blob {}", l.digest))?;
                    let mut w =
                        File::create(&plain).ctx(|| format!("create {}", plain.display()))?;
                    io::copy(&mut r, &mut w).ctx(|| format!("decompress {}", l.digest))?;
                    add_file(&mut t, &lname, &plain).ctx(|| format!("write {lname}"))?;
                    fs::remove_file(&plain).ctx(|| "remove temp layer")?;
                    layer_names.push(lname);
                }
                let m = json!([{"Config": cfg_name, "RepoTags": [name], "Layers": layer_names}]);
                add_bytes(
                    &mut t,
                    "manifest.json",
                    &serde_json::to_vec(&m).expect("json"),
                )
                .and_then(|_| t.into_inner()?.flush())
                .ctx(|| format!("write {}", tmp.display()))?;
            }
        }
        fs::rename(&tmp, out).ctx(|| format!("rename to {}", out.display()))
    })();
    if res.is_err() {
        let _ = remove_tree(&tmp);
        let _ = fs::remove_file(&tmp);
    }
    res
}

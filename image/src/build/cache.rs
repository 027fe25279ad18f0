//! The build cache: for each step, the image it made, under a key chained from the step
//! before: key(n) = sha256(key(n-1), the instruction as written, the build args in scope,
//! and for COPY/ADD a digest of the files copied, or the image copied from). The chain starts
//! at the base image's id, so a changed instruction, argument or file misses there and at
//! every step after it. Entries are files `STORE/build-cache/<key hex>` holding the image's
//! manifest digest; `gc` keeps the images they name (`gc --build-cache` drops them).
use crate::digest::{Digest, Sha256};
use crate::error::{IoContext, Result};
use crate::store::{atomic_write, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

#[derive(Serialize, Deserialize)]
struct Entry {
    manifest: Digest,
}

pub fn dir(store: &Store) -> PathBuf {
    store.root.join("build-cache")
}

/// The key of a step: its parent's key and its inputs.
pub fn key(parent: &Digest, inputs: &[&str]) -> Digest {
    let mut h = Sha256::new();
    h.update(parent.as_str().as_bytes());
    for i in inputs {
        h.update(b"\n");
        h.update(&(i.len() as u64).to_le_bytes());
        h.update(i.as_bytes());
    }
    Digest::from_hasher(h)
}

/// The image a step with this key made, if it is still whole in the store.
pub fn get(store: &Store, key: &Digest) -> Option<Digest> {
    let data = fs::read(dir(store).join(key.hex())).ok()?;
    let e: Entry = serde_json::from_slice(&data).ok()?;
    let m = store.manifest(&e.manifest).ok()?;
    let cfg = store.config(&m.config.digest).ok()?;
    let whole = m.layers.iter().all(|l| store.has_blob(&l.digest))
        && store
            .chains(&cfg.rootfs.diff_ids)
            .iter()
            .all(|c| store.has_layer(c));
    whole.then_some(e.manifest)
}

pub fn put(store: &Store, key: &Digest, manifest: &Digest) -> Result<()> {
    let d = dir(store);
    fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
    let e = Entry {
        manifest: manifest.clone(),
    };
    atomic_write(
        &d.join(key.hex()),
        &serde_json::to_vec(&e).expect("serialize"),
    )
}

/// The manifests the cache refers to (gc keeps them).
pub fn manifests(store: &Store) -> Vec<Digest> {
    let Ok(rd) = fs::read_dir(dir(store)) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|d| serde_json::from_slice::<Entry>(&d).ok())
        .map(|e| e.manifest)
        .collect()
}

/// Removes every entry; returns how many there were.
pub fn clear(store: &Store) -> Result<usize> {
    let d = dir(store);
    let Ok(rd) = fs::read_dir(&d) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in rd {
        let p = e.ctx(|| format!("read {}", d.display()))?.path();
        fs::remove_file(&p).ctx(|| format!("remove {}", p.display()))?;
        n += 1;
    }
    Ok(n)
}

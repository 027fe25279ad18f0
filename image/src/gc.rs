//! `rmi` and `gc`: refs go away; blobs and layers that no ref and no bundle uses are deleted.
use crate::bundle;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::{remove_tree, Store};
use std::collections::HashSet;
use std::fs;

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

/// Removes the refs `names`; refuses an image a bundle still uses unless `force`.
/// Then collects garbage (in the same exclusive lock).
pub fn rmi(store: &Store, names: &[String], force: bool) -> Result<(Vec<String>, GcReport)> {
    let _lock = store.lock_exclusive()?;
    let containers = bundle::list(store)?;
    let mut removed = Vec::new();
    store.update_refs(|refs| {
        for n in names {
            let (name, md) = store.resolve(n)?;
            let name = name.ok_or_else(|| Error::NoImage(n.clone()))?;
            let others = refs
                .iter()
                .filter(|(k, v)| **k != name && **v == md)
                .count();
            if !force && others == 0 {
                if let Some(c) = containers.iter().find(|c| c.manifest == md) {
                    return Err(Error::Invalid(format!(
                        "image {name} is used by bundle {} (rm it first, or rmi --force)",
                        c.bundle.display()
                    )));
                }
            }
            refs.remove(&name);
            removed.push(name);
        }
        Ok(())
    })?;
    let report = collect(store)?;
    Ok((removed, report))
}

pub fn gc(store: &Store) -> Result<GcReport> {
    let _lock = store.lock_exclusive()?;
    collect(store)
}

fn collect(store: &Store) -> Result<GcReport> {
    let mut blobs: HashSet<String> = HashSet::new();
    let mut layers: HashSet<String> = HashSet::new();
    let mut manifests: Vec<Digest> = store.refs()?.into_values().collect();
    // the images of the build cache stay until `gc --build-cache`
    manifests.extend(crate::build::cache::manifests(store));
    let containers = bundle::list(store)?;
    for c in &containers {
        manifests.push(c.manifest.clone());
        blobs.insert(c.config.hex().to_string());
        layers.extend(store.chains(&c.layers).iter().map(|d| d.hex().to_string()));
    }
    for md in manifests {
        blobs.insert(md.hex().to_string());
        let Ok(m) = store.manifest(&md) else { continue };
        blobs.insert(m.config.digest.hex().to_string());
        blobs.extend(m.layers.iter().map(|l| l.digest.hex().to_string()));
        if let Ok(cfg) = store.config(&m.config.digest) {
            // layer dirs go by chain ID (store.rs)
            let chains = store.chains(&cfg.rootfs.diff_ids);
            layers.extend(chains.iter().map(|d| d.hex().to_string()));
        }
    }
    let mut r = GcReport::default();
    let bdir = store.root.join("blobs/sha256");
    for e in fs::read_dir(&bdir).ctx(|| format!("read {}", bdir.display()))? {
        let e = e.ctx(|| "read blobs")?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !blobs.contains(&name) {
            r.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).ctx(|| format!("remove {}", e.path().display()))?;
            r.blobs += 1;
        }
    }
    let ldir = store.root.join("layers");
    for e in fs::read_dir(&ldir).ctx(|| format!("read {}", ldir.display()))? {
        let e = e.ctx(|| "read layers")?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !layers.contains(&name) {
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                r.bytes += store.layer_meta(&d).map(|m| m.size).unwrap_or(0);
            }
            remove_tree(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
            r.layers += 1;
        }
    }
    // leftovers of interrupted imports/commits (none can be running: we hold the lock)
    let tdir = store.root.join("tmp");
    for e in fs::read_dir(&tdir).ctx(|| format!("read {}", tdir.display()))? {
        let e = e.ctx(|| "read tmp")?;
        remove_tree(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
    }
    Ok(r)
}

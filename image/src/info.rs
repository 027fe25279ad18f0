//! Figures for `images`, `ls` and `history`.
use crate::bundle::{self, Container};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::size::disk_usage;
use crate::store::Store;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    pub name: String,
    pub id: Digest,
    pub manifest: Digest,
    pub created: String,
    /// disk usage of all the image's unpacked layers
    pub size: u64,
    /// the part of `size` in layers other images use too
    pub shared_size: u64,
    pub layers: Vec<Digest>,
}

pub fn images(store: &Store) -> Result<Vec<ImageInfo>> {
    let mut out = Vec::new();
    for (name, md) in store.refs()? {
        let m = store.manifest(&md)?;
        let cfg = store.config(&m.config.digest)?;
        out.push(ImageInfo {
            name,
            id: m.config.digest.clone(),
            manifest: md,
            created: cfg.created.clone().unwrap_or_default(),
            size: 0,
            shared_size: 0,
            layers: cfg.rootfs.diff_ids.clone(),
        });
    }
    // a layer dir (a chain ID) is shared when images with different ids use it
    let mut users: HashMap<Digest, std::collections::HashSet<Digest>> = HashMap::new();
    for i in &out {
        for l in store.chains(&i.layers) {
            users.entry(l).or_default().insert(i.id.clone());
        }
    }
    for i in &mut out {
        let mut seen = std::collections::HashSet::new();
        for l in &store.chains(&i.layers) {
            if !seen.insert(l.clone()) {
                continue;
            }
            let s = store.layer_meta(l).map(|m| m.size).unwrap_or(0);
            i.size += s;
            if users.get(l).map_or(0, |u| u.len()) > 1 {
                i.shared_size += s;
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct BundleInfo {
    pub id: String,
    pub bundle: String,
    pub image: String,
    pub created: String,
    pub mode: &'static str,
    /// the container's own layer (upper dir; the whole rootfs for --copy)
    pub size: u64,
    /// size + the image's layers
    pub virtual_size: u64,
}

pub fn bundle_info(store: &Store, c: &Container) -> Result<BundleInfo> {
    let (size, virtual_size) = if c.copy {
        let s = disk_usage(&c.rootfs()).ctx(|| format!("size of {}", c.rootfs().display()))?;
        (s, s)
    } else {
        let s =
            disk_usage(&c.upper(store)).ctx(|| format!("size of {}", c.upper(store).display()))?;
        let img: u64 = store
            .chains(&c.layers)
            .iter()
            .map(|l| store.layer_meta(l).map(|m| m.size).unwrap_or(0))
            .sum();
        (s, s + img)
    };
    Ok(BundleInfo {
        id: c.id.clone(),
        bundle: c.bundle.display().to_string(),
        image: c.image.clone(),
        created: c.created.clone(),
        mode: if c.copy { "copy" } else { "overlay" },
        size,
        virtual_size,
    })
}

pub fn bundles(store: &Store) -> Result<Vec<BundleInfo>> {
    bundle::list(store)?
        .iter()
        .map(|c| bundle_info(store, c))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct HistoryRow {
    pub created: String,
    pub created_by: String,
    pub comment: String,
    pub empty_layer: bool,
    /// unpacked size of the layer this step made (0 for an empty layer)
    pub size: u64,
    pub layer: Option<Digest>,
}

pub fn history(store: &Store, image: &str) -> Result<Vec<HistoryRow>> {
    let (_, md) = store.resolve(image)?;
    let m = store.manifest(&md)?;
    let cfg = store.config(&m.config.digest)?;
    // (diff_id, chain ID): the layer dir, and its size, go by the chain ID
    let chains = store.chains(&cfg.rootfs.diff_ids);
    let mut layers = cfg.rootfs.diff_ids.iter().zip(&chains);
    let size = |chain: &Digest| store.layer_meta(chain).map_or(0, |m| m.size);
    let mut rows = Vec::new();
    for h in &cfg.history {
        let layer = if h.empty_layer { None } else { layers.next() };
        rows.push(HistoryRow {
            created: h.created.clone().unwrap_or_default(),
            created_by: h.created_by.clone().unwrap_or_default(),
            comment: h.comment.clone().unwrap_or_default(),
            empty_layer: h.empty_layer,
            size: layer.map_or(0, |(_, c)| size(c)),
            layer: layer.map(|(d, _)| d.clone()),
        });
    }
    // layers with no history entry (configs without history)
    for (l, c) in layers {
        rows.push(HistoryRow {
            created: String::new(),
            created_by: String::new(),
            comment: String::new(),
            empty_layer: false,
            size: size(c),
            layer: Some(l.clone()),
        });
    }
    rows.reverse();
    Ok(rows)
}

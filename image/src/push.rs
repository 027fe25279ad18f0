//! `push`: a stored image (imported, pulled or made by `commit`) to a registry. Each blob
//! (layers, then config) is checked with HEAD first; one the registry has in another
//! repository that a stored image came from is mounted from there instead of uploaded;
//! the rest are uploaded (one PUT, or PATCH chunks with `--chunk-size`). The manifest goes
//! last, so the tag never names an image whose blobs are not all there.
use crate::digest::Digest;
use crate::error::{malformed, Error, Result};
use crate::oci::{Manifest, MT_MANIFEST};
use crate::registry::client::BlobFile;
use crate::registry::conf::Conf;
use crate::registry::{bar, progress, Options, Reference, Registry};
use crate::store::Store;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub net: Options,
    /// upload in PATCH chunks of this many bytes (default: one PUT per blob)
    pub chunk: Option<u64>,
    pub progress: bool,
}

#[derive(Debug, Default)]
pub struct Pushed {
    pub reference: String,
    pub manifest: Option<Digest>,
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

/// Pushes stored `image` to `dest` (a full reference; default: the image's own ref).
pub fn push(store: &Store, image: &str, dest: Option<&str>, o: &PushOptions) -> Result<Pushed> {
    let _lock = store.lock_shared()?;
    let (name, md) = store.resolve(image)?;
    let dest = match (dest, &name) {
        (Some(d), _) => d.to_string(),
        (None, Some(n)) => n.clone(),
        (None, None) => return Err(Error::Invalid(format!("{image} has no name to push to"))),
    };
    let want = Reference::parse(&dest)?;
    // push goes to the registry's own location (registries.conf may move it), never a mirror
    let conf = Conf::load()?;
    let ep = conf
        .pull_endpoints(&want)?
        .into_iter()
        .find(|e| !e.mirror)
        .expect("an endpoint that is not a mirror");
    let r = &ep.reference;
    let mut net = o.net.clone();
    if ep.insecure {
        net.tls_verify = false;
        net.plain_http = true;
    }
    let manifest_bytes = store.read_blob(&md)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| malformed(format!("manifest {md}"), e))?;
    let from = mount_sources(store, r)?;
    let mut scopes = vec![format!("repository:{}:pull,push", r.repo)];
    let mut repos: Vec<&String> = from.values().collect();
    repos.sort();
    repos.dedup();
    scopes.extend(repos.iter().map(|f| format!("repository:{f}:pull")));
    let reg = Registry::connect(r, &net, scopes)?;

    let mut out = Pushed {
        reference: r.to_string(),
        ..Pushed::default()
    };
    let mp = progress(o.progress);
    let blobs = manifest
        .layers
        .iter()
        .chain(std::iter::once(&manifest.config));
    for desc in blobs {
        let d = &desc.digest;
        if reg.has_blob(&r.repo, d)? {
            out.existed += 1;
            continue;
        }
        let loc = match from.get(d) {
            Some(f) => match reg.start_upload(&r.repo, Some((d, f)))? {
                None => {
                    tracing::debug!(blob = %d, from = %f, "mounted");
                    out.mounted += 1;
                    continue;
                }
                Some(loc) => loc,
            },
            None => reg
                .start_upload(&r.repo, None)?
                .expect("an upload without mount has a location"),
        };
        let path = store.blob_path(d);
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::Io {
                context: format!("stat {}", path.display()),
                source: e,
            })?
            .len();
        let b = bar(&mp, d.short(), size);
        let blob = BlobFile {
            digest: d,
            path: &path,
            size,
        };
        reg.upload(&r.repo, loc, &blob, o.chunk, &b)?;
        b.finish();
        out.uploaded += 1;
    }
    let _ = mp.clear();
    let media_type = manifest.media_type.as_deref().unwrap_or(MT_MANIFEST);
    let object = r.tag.clone().unwrap_or_else(|| md.to_string());
    reg.put_manifest(&r.repo, &object, media_type, &manifest_bytes)?;
    out.manifest = Some(md);
    Ok(out)
}

/// For each blob of a stored image named on the same registry in another repository: one
/// such repository (a cross-repository mount source).
fn mount_sources(store: &Store, dest: &Reference) -> Result<BTreeMap<Digest, String>> {
    let mut m = BTreeMap::new();
    for (name, md) in store.refs()? {
        let Ok(r) = Reference::parse(&name) else {
            continue;
        };
        if r.host != dest.host || r.repo == dest.repo {
            continue;
        }
        let Ok(man) = store.manifest(&md) else {
            continue;
        };
        for l in man.layers.iter().chain(std::iter::once(&man.config)) {
            m.entry(l.digest.clone()).or_insert_with(|| r.repo.clone());
        }
    }
    Ok(m)
}

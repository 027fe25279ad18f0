//! `pull`: an image from a registry into the store. The manifest (an index followed to this
//! host's platform, or `--platform`) and the config are fetched and checked first; then the
//! layers the store lacks are downloaded by a few threads at once, each into a resumable
//! partial file, while this thread unpacks them bottom to top from those same files (digest
//! and diff_id checked on the way). Everything lands in a staging dir and goes into the store
//! through import's `install` (blobs and layers renamed, refs last), so a failed pull leaves
//! the store as it was, except the partial files a retry resumes from.
use crate::digest::{Digest, HashReader};
use crate::error::{malformed, Error, IoContext, Result};
use crate::import::{foreign_note, install, unpack_blob, write_layer_meta, Imported, Plan, Staged};
use crate::oci::*;
use crate::registry::conf::{Conf, Endpoint};
use crate::registry::download::{lock_partials, Download};
use crate::registry::{bar, progress, Options, Registry};
use crate::store::{skipped_chain, Store};
use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Configs larger than this are refused.
const CONFIG_LIMIT: u64 = 8 << 20;

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub net: Options,
    /// `os/arch[/variant]`; default linux/<this host's arch>
    pub platform: Option<String>,
    /// blobs downloaded at once
    pub jobs: usize,
    pub progress: bool,
}

/// Pulls `name` (a full reference, or a short name resolved by registries.conf).
pub fn pull(store: &Store, name: &str, o: &PullOptions) -> Result<Imported> {
    let conf = Conf::load()?;
    let mut tried = Vec::new();
    for want in conf.qualify(name)? {
        for ep in conf.pull_endpoints(&want)? {
            match resolve(&ep, &want.to_string(), o) {
                Ok((reg, plan)) => return fetch_layers(store, reg, &ep, plan, o),
                Err(e) => {
                    tracing::debug!(endpoint = %ep.reference, "{e}");
                    tried.push((ep.reference.to_string(), e));
                }
            }
        }
    }
    if tried.len() == 1 {
        return Err(tried.pop().expect("one").1);
    }
    let all: Vec<String> = tried.iter().map(|(r, e)| format!("{r}: {e}")).collect();
    Err(Error::Registry(format!("pull {name}: {}", all.join("; "))))
}

/// Network options for an endpoint: registries.conf's `insecure` means plain HTTP.
fn endpoint_options(ep: &Endpoint, base: &Options) -> Options {
    let mut o = base.clone();
    if ep.insecure {
        o.tls_verify = false;
        o.plain_http = true;
    }
    o
}

/// Manifest (through an index to one platform) and config, verified: the plan of the pull.
fn resolve(ep: &Endpoint, name: &str, o: &PullOptions) -> Result<(Arc<Registry>, Plan)> {
    let r = &ep.reference;
    let net = endpoint_options(ep, &o.net);
    let reg = Registry::connect(r, &net, vec![format!("repository:{}:pull", r.repo)])?;
    let mut m = reg.manifest(&r.repo, &r.object())?;
    if is_index(&m.media_type, &m.bytes) {
        let idx: Index = serde_json::from_slice(&m.bytes)
            .map_err(|e| malformed(format!("index {}", m.digest), e))?;
        let d = choose_platform(&idx, o.platform.as_deref(), &m.digest)?;
        m = reg.manifest(&r.repo, d.as_str())?;
    }
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| malformed(format!("manifest {}", m.digest), e))?;
    if v["schemaVersion"] == 1 {
        return Err(Error::Invalid(format!(
            "{r}: Docker schema 1 manifests are not supported"
        )));
    }
    let manifest: Manifest =
        serde_json::from_value(v).map_err(|e| malformed(format!("manifest {}", m.digest), e))?;
    let config_bytes = reg.small_blob(&r.repo, &manifest.config.digest, CONFIG_LIMIT)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("config {}", manifest.config.digest), e))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(malformed(
            format!("image {r}"),
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
    let plan = Plan {
        name: name.to_string(),
        manifest_bytes: m.bytes,
        manifest_digest: m.digest,
        config_digest: manifest.config.digest.clone(),
        config_bytes,
        layers,
    };
    Ok((Arc::new(reg), plan))
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == MT_INDEX || media_type == MT_DOCKER_LIST {
        return true;
    }
    // some registries answer a generic type: an index is the document with `manifests`
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    v.get("manifests").is_some() && v.get("config").is_none()
}

/// The manifest of an index for `platform` (`os/arch[/variant]`, default this host's).
fn choose_platform(idx: &Index, platform: Option<&str>, digest: &Digest) -> Result<Digest> {
    let want = platform
        .map(String::from)
        .unwrap_or_else(|| format!("linux/{}", host_arch()));
    let mut parts = want.splitn(3, '/');
    let (os, arch, variant) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    let arch =
        arch.ok_or_else(|| Error::Invalid(format!("--platform {want:?}: want OS/ARCH[/VARIANT]")))?;
    let fits = |p: &Platform| {
        p.os == os
            && p.architecture == arch
            && variant.is_none_or(|v| p.variant.as_deref() == Some(v))
    };
    idx.manifests
        .iter()
        .filter(|m| m.platform.as_ref().is_some_and(fits))
        // with no variant asked for, one without a variant (or arm64's v8) first
        .min_by_key(|m| {
            let v = m.platform.as_ref().and_then(|p| p.variant.as_deref());
            !matches!(v, None | Some("v8"))
        })
        .map(|m| m.digest.clone())
        .ok_or_else(|| {
            let have: Vec<String> = idx
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            Error::Invalid(format!(
                "index {digest} has no {want} image (it has: {})",
                have.join(", ")
            ))
        })
}

/// A blob to download, and whether its layer is to be unpacked (else only stored).
struct Job {
    layer: usize,
    dl: Arc<Download>,
    unpack: bool,
}

fn fetch_layers(
    store: &Store,
    reg: Arc<Registry>,
    ep: &Endpoint,
    plan: Plan,
    o: &PullOptions,
) -> Result<Imported> {
    let _lock = store.lock_shared()?;
    let staging = store.tmp_dir("pull")?;
    let partial_dir = store.root.join("tmp/partial");
    fs::create_dir_all(&partial_dir).ctx(|| format!("create {}", partial_dir.display()))?;

    // a layer is unpacked over the layers below it: stored (and reused) by chain ID. Blobs
    // the store has are not fetched, a blob named twice is fetched once; a layer to unpack
    // whose blob is not fetched is read from the store's (or this pull's) copy
    let chains = plan_chains(store, &plan);
    let mut jobs = Vec::new();
    let mut seen_blobs = HashSet::new();
    for (i, ((desc, _), (chain, skipped))) in plan.layers.iter().zip(&chains).enumerate() {
        let have_layer = store.has_layer(chain);
        let have_blob = store.has_blob(&desc.digest) || !seen_blobs.insert(desc.digest.clone());
        if have_blob || *skipped {
            continue;
        }
        jobs.push(Job {
            layer: i,
            dl: Download::new(&partial_dir, &desc.digest, desc.size),
            unpack: !have_layer,
        });
    }
    // held until the blobs are in the store: another pull of the same blob waits for them,
    // then finds them stored
    let _partials = lock_partials(&jobs.iter().map(|j| &*j.dl).collect::<Vec<_>>())?;
    jobs.retain(|j| {
        let stored = store.has_blob(&j.dl.digest) && store.has_layer(&chains[j.layer].0);
        if stored && fs::metadata(&j.dl.path).is_ok_and(|m| m.len() == 0) {
            let _ = fs::remove_file(&j.dl.path); // opened (created) only to lock it
        }
        !stored
    });
    let reused = chains
        .iter()
        .filter(|(c, skipped)| !skipped && store.has_layer(c))
        .count();
    let skipped = chains.iter().filter(|(_, skipped)| *skipped).count();

    let mp = progress(o.progress);
    let abort = Arc::new(AtomicBool::new(false));
    let queue: VecDeque<_> = jobs
        .iter()
        .map(|j| (j.dl.clone(), bar(&mp, j.dl.digest.short(), j.dl.size)))
        .collect();
    let queue = Arc::new(Mutex::new(queue));
    let workers: Vec<_> = (0..o.jobs.max(1).min(jobs.len()))
        .map(|_| {
            let (queue, reg, abort) = (queue.clone(), reg.clone(), abort.clone());
            let repo = ep.reference.repo.clone();
            std::thread::spawn(move || loop {
                let Some((dl, b)) = queue.lock().expect("lock").pop_front() else {
                    break;
                };
                dl.run(&reg, &repo, &b, &abort);
                b.finish();
            })
        })
        .collect();

    let source = ep.reference.name();
    let res = unpack_in_order(store, &plan, &jobs, &staging, &source);
    if res.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    for w in workers {
        let _ = w.join();
    }
    let _ = mp.clear();
    let (staged, notes) = res?;
    install(store, &staged, std::slice::from_ref(&plan))?;
    Ok(Imported {
        name: plan.name.clone(),
        manifest: plan.manifest_digest.clone(),
        config: plan.config_digest.clone(),
        layers_fetched: jobs.len(),
        layers_unpacked: plan.layers.len() - reused - skipped,
        layers_reused: reused,
        notes,
    })
}

/// This thread's part: each layer, bottom first, read from its download as it arrives.
fn unpack_in_order(
    store: &Store,
    plan: &Plan,
    jobs: &[Job],
    staging: &crate::store::TempDir,
    source: &str,
) -> Result<(Staged, Vec<String>)> {
    let mut staged = Staged::default();
    let mut lowers: Vec<PathBuf> = Vec::new();
    let mut notes = Vec::new();
    let chains = plan_chains(store, plan);
    for (i, ((desc, diff_id), (chain, skipped))) in plan.layers.iter().zip(&chains).enumerate() {
        let layer_dir = staging.path().join(format!("layer-{}", chain.hex()));
        if *skipped {
            // not fetched: an empty layer dir in its place
            let n = foreign_note(desc, source);
            tracing::warn!("{n}");
            notes.push(n);
            if !store.has_layer(chain) && !staged.layers.contains_key(chain) {
                fs::create_dir_all(layer_dir.join("fs"))
                    .ctx(|| format!("create {}", layer_dir.display()))?;
                write_layer_meta(&layer_dir, diff_id)?;
                staged.layers.insert(chain.clone(), layer_dir);
            }
        } else if let Some(job) = jobs.iter().find(|j| j.layer == i) {
            let tail = job.dl.tail()?;
            let checked = if job.unpack {
                let r = unpack_blob(tail, source, desc, diff_id, &layer_dir, &lowers);
                r.map(|_| {
                    staged.layers.insert(chain.clone(), layer_dir);
                })
            } else {
                // the layer is stored under another compression: only the blob is kept
                HashReader::new(tail)
                    .finish()
                    .ctx(|| format!("download {}", desc.digest))
                    .and_then(|(got, _)| {
                        if got == desc.digest {
                            Ok(())
                        } else {
                            Err(Error::DigestMismatch {
                                what: format!("layer blob from {source}"),
                                expected: desc.digest.to_string(),
                                actual: got.to_string(),
                            })
                        }
                    })
            };
            if let Err(e) = checked {
                if matches!(e, Error::DigestMismatch { .. }) {
                    // its bytes are wrong: a retry must not resume from them
                    let _ = fs::remove_file(&job.dl.path);
                }
                return Err(e);
            }
            let blob = staging.path().join(format!("blob-{}", desc.digest.hex()));
            fs::rename(&job.dl.path, &blob).ctx(|| format!("stage blob {}", desc.digest))?;
            staged.blobs.insert(desc.digest.clone(), blob);
        } else if !store.has_layer(chain) {
            // not fetched (the store or this pull has its blob): the same layer over another
            // base, or named twice in this image
            let blob = match staged.blobs.get(&desc.digest) {
                Some(p) => p.clone(),
                None => store.blob_path(&desc.digest),
            };
            let f = fs::File::open(&blob).ctx(|| format!("open {}", blob.display()))?;
            unpack_blob(f, source, desc, diff_id, &layer_dir, &lowers)?;
            staged.layers.insert(chain.clone(), layer_dir);
        }
        let dir = staged
            .layers
            .get(chain)
            .map(|p| p.join("fs"))
            .unwrap_or_else(|| store.layer_fs(chain));
        lowers.insert(0, dir);
    }
    Ok((staged, notes))
}

/// The keys of a plan's layer dirs, bottom first, and which layers are skipped: a foreign
/// (non-distributable) layer the store has not unpacked for real is not fetched (registries
/// do not serve such blobs, or serve them from elsewhere) and is keyed by skipped_chain.
fn plan_chains(store: &Store, plan: &Plan) -> Vec<(Digest, bool)> {
    let mut out: Vec<(Digest, bool)> = Vec::with_capacity(plan.layers.len());
    for (desc, diff_id) in &plan.layers {
        let c = Digest::chain_step(out.last().map(|(c, _)| c), diff_id);
        out.push(if desc.is_foreign_layer() && !store.has_layer(&c) {
            (skipped_chain(&c), true)
        } else {
            (c, false)
        });
    }
    out
}

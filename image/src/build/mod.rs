//! `capsa-image build`: a Dockerfile to an image. A build is the store's own pipeline in a
//! loop: for each instruction that changes files, a bundle of the image so far (overlay of
//! its layers plus a thin writable layer), the instruction run in it (RUN by an OCI runtime,
//! COPY/ADD by this process through the mounted rootfs), and the writable layer committed as
//! the next layer (`commit::commit_layer`). The other instructions change the config only and
//! add an `empty_layer` history entry, as docker records them. Every step's image is stored
//! and found again through the build cache (`cache`).
pub mod cache;
mod fscopy;
pub mod ignore;
mod meta;
pub mod parse;
mod run;
mod stages;
pub mod words;

use crate::bundle::{self, now_rfc3339, BundleOptions, Container};
use crate::commit::{commit_layer, store_image, LayerFrom};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::oci::*;
use crate::store::{normalize_ref, Store, TempDir};
use crate::sys;
use fscopy::{Attrs, Copier, Source, TreeHash};
use ignore::{clean, has_wildcard, Ignore};
use parse::{Args, Dockerfile, Instruction};
use serde_json::json;
use stages::Stage;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// a network namespace of its own (loopback only)
    None,
    /// the host's network
    Host,
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Network> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            _ => Err(Error::Invalid(format!(
                "network {s:?}: none or host expected"
            ))),
        }
    }
}

pub struct BuildOptions {
    pub context: PathBuf,
    /// default CONTEXT/Dockerfile
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    /// the stage to build (default: the last)
    pub target: Option<String>,
    pub no_cache: bool,
    pub network: Network,
    /// the OCI runtime RUN steps use (needed only when there is one)
    pub runtime: Option<PathBuf>,
    /// the cgroup RUN steps' cgroups are made under (None: the root of each hierarchy)
    pub cgroup_parent: Option<String>,
    /// only the image id on stdout; RUN output only when a step fails
    pub quiet: bool,
    /// how to pull a FROM image missing from the store (None: do not pull)
    #[cfg(feature = "registry")]
    pub pull: Option<crate::pull::PullOptions>,
}

#[derive(Debug)]
pub struct Built {
    pub manifest: Digest,
    /// the image id
    pub config: Digest,
    pub tags: Vec<String>,
    pub steps: usize,
    pub cached: usize,
}

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The automatic platform ARGs: this host is both the build and the target platform (builds
/// for another platform are not done).
fn platform_args() -> [(&'static str, String); 8] {
    let arch = crate::oci::host_arch();
    let platform = format!("linux/{arch}");
    [
        ("TARGETPLATFORM", platform.clone()),
        ("TARGETOS", "linux".into()),
        ("TARGETARCH", arch.into()),
        ("TARGETVARIANT", String::new()),
        ("BUILDPLATFORM", platform),
        ("BUILDOS", "linux".into()),
        ("BUILDARCH", arch.into()),
        ("BUILDVARIANT", String::new()),
    ]
}

/// A stage's image so far and what the build keeps beside it.
struct State {
    md: Digest,
    manifest: Manifest,
    config: ImageConfig,
    /// the cache key of the last step
    key: Digest,
    /// ARGs declared in this stage, with their values
    args: Vec<(String, Option<String>)>,
    shell: Vec<String>,
    /// a CMD was given in this stage (an ENTRYPOINT then keeps it)
    cmd_set: bool,
}

impl State {
    fn exec(&mut self) -> &mut ExecConfig {
        self.config.config.get_or_insert_with(ExecConfig::default)
    }
    fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }
    /// Variables for expansion: the image's Env, then the stage's ARGs.
    fn lookup(&self, name: &str) -> Option<String> {
        let ec = self.config.config.clone().unwrap_or_default();
        meta::get_env(&ec, name).or_else(|| {
            self.args
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        })
    }
    /// NAME=value of the ARGs in scope that have a value and no ENV of the same name.
    /// Sorted by name; an ARG declared twice has its last value.
    fn build_env(&self) -> Vec<String> {
        let ec = self.config.config.clone().unwrap_or_default();
        self.args
            .iter()
            .filter(|(k, _)| meta::get_env(&ec, k).is_none())
            .filter_map(|(k, val)| val.as_ref().map(|val| (k.as_str(), val.as_str())))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
    fn args_key(&self) -> String {
        let m: BTreeMap<&str, &str> = self
            .args
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
            .collect();
        m.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

/// What a finished stage made.
#[derive(Clone)]
struct Done {
    md: Digest,
}

/// A bundle made for one step, removed (unmounted, writable layer deleted) when dropped.
struct StepBundle<'a> {
    store: &'a Store,
    c: Container,
}

/// The build's temp dir, kept (with a warning) if a mount inside it could not be removed:
/// deleting it would reach through the mount.
struct BuildTmp(Option<TempDir>);

impl BuildTmp {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("until dropped").path()
    }
}

impl Drop for BuildTmp {
    fn drop(&mut self) {
        let Some(t) = self.0.take() else { return };
        let prefix = format!("{}/", t.path().display());
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| {
                m.lines()
                    .any(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&prefix)))
            })
            .unwrap_or(true);
        if mounted {
            let p = t.keep();
            eprintln!(
                "capsa-image: warning: {} still has a mount; left in place (capsa-image ls / rm)",
                p.display()
            );
        }
    }
}

impl Drop for StepBundle<'_> {
    fn drop(&mut self) {
        if let Err(e) = bundle::remove(self.store, &self.c.id) {
            tracing::warn!(bundle = %self.c.bundle.display(), "remove build bundle: {e}");
        }
    }
}

struct Builder<'a> {
    store: &'a Store,
    o: &'a BuildOptions,
    df: Dockerfile,
    context: OwnedFd,
    ignore: Ignore,
    tmp: BuildTmp,
    /// ARGs before the first FROM, with their values
    global: Vec<(String, Option<String>)>,
    stages: Vec<Stage>,
    done: Vec<Option<Done>>,
    step: usize,
    total: usize,
    cached: usize,
    bundles: usize,
    /// the digest of the context files the current COPY/ADD copies (from its cache key)
    copy_digest: Option<Digest>,
    /// build args some ARG declared
    used_args: BTreeSet<String>,
}

pub fn build(store: &Store, o: &BuildOptions) -> Result<Built> {
    if let Some(p) = &o.cgroup_parent {
        let rel = p.trim_matches('/');
        if rel.is_empty()
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Invalid(format!(
                "--cgroup-parent {p:?}: a cgroup path (a/b), without empty, . or .. components"
            )));
        }
    }
    let _lock = store.lock_shared()?;
    // Ctrl-C ends the build at the current step, which then cleans up after itself
    let _interrupts = sys::catch_interrupts().ctx(|| "catch interrupts")?;
    let dockerfile = o
        .dockerfile
        .clone()
        .unwrap_or_else(|| o.context.join("Dockerfile"));
    // `-f -`: the Dockerfile from stdin (named so in parse errors)
    let (text, name) = if dockerfile == Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .ctx(|| "read the Dockerfile from stdin")?;
        (t, "<stdin>".to_string())
    } else {
        let t = std::fs::read_to_string(&dockerfile)
            .ctx(|| format!("read {}", dockerfile.display()))?;
        (t, dockerfile.display().to_string())
    };
    let df = parse::parse(&text, &name)?;
    let context =
        sys::open_dir(&o.context).ctx(|| format!("open context {}", o.context.display()))?;
    let ignore = match std::fs::read_to_string(o.context.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => {
            return Err(Error::Io {
                context: "read .dockerignore".into(),
                source: e,
            })
        }
    };
    let mut b = Builder {
        store,
        o,
        df,
        context,
        ignore,
        tmp: BuildTmp(Some(store.tmp_dir("build")?)),
        global: Vec::new(),
        stages: Vec::new(),
        done: Vec::new(),
        step: 0,
        total: 0,
        cached: 0,
        bundles: 0,
        copy_digest: None,
        used_args: BTreeSet::new(),
    };
    b.run()
}

impl<'a> Builder<'a> {
    fn say(&self, s: impl AsRef<str>) {
        if !self.o.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", s.as_ref());
            let _ = out.flush();
        }
    }

    fn run(&mut self) -> Result<Built> {
        let (global, stages) = stages::split(&self.df)?;
        // the automatic platform ARGs (docker's, buildah's): in the global scope for FROM, and
        // the value of a stage's `ARG TARGETARCH` (…) without a default; a --build-arg wins
        for (k, v) in platform_args() {
            let v = self.o.build_args.get(k).cloned().unwrap_or(v);
            self.global.push((k.to_string(), Some(v)));
            self.used_args.insert(k.to_string());
        }
        for ins in &global {
            let g = self.global.clone();
            let lookup = |k: &str| {
                g.iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| v.clone())
            };
            // an ARG without a default keeps an earlier value (an automatic one)
            let decl = self.declare_args(ins, &g, &lookup)?;
            self.global.extend(decl);
        }
        let global = self.global.clone();
        self.stages = stages::plan(&self.df, stages, &global)?;
        let target = stages::target(&self.df, &self.stages, self.o.target.as_deref())?;
        let needed = stages::needed(&self.stages, target);
        self.total = needed.iter().map(|&i| 1 + self.stages[i].body.len()).sum();
        self.done = vec![None; self.stages.len()];
        let mut last = None;
        for &i in &needed {
            let st = self.stage(i)?;
            self.done[i] = Some(Done { md: st.md.clone() });
            last = Some(st);
        }
        let st = last.expect("the target stage was built");
        if st.config.rootfs.diff_ids.is_empty() && st.config.history.is_empty() {
            return Err(Error::Invalid(
                "no image was made: the target stage is FROM scratch with no instruction".into(),
            ));
        }
        let unused: Vec<&String> = self
            .o
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k))
            .collect();
        if !unused.is_empty() {
            eprintln!(
                "capsa-image: warning: build args not consumed by any ARG: {}",
                unused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if sys::interrupted() {
            return Err(Error::Invalid("interrupted".into()));
        }
        let tags: Vec<String> = self.o.tags.iter().map(|t| normalize_ref(t)).collect();
        if !tags.is_empty() {
            self.store.update_refs(|refs| {
                for t in &tags {
                    refs.insert(t.clone(), st.md.clone());
                }
                Ok(())
            })?;
        }
        for t in &tags {
            self.say(format!("Successfully tagged {t}"));
        }
        Ok(Built {
            manifest: st.md.clone(),
            config: st.id().clone(),
            tags,
            steps: self.step,
            cached: self.cached,
        })
    }

    /// `ARG NAME[=default] ...`: the declared names with their values (a --build-arg, else
    /// the default expanded, else the global ARG's value).
    fn declare_args(
        &mut self,
        ins: &Instruction,
        global: &[(String, Option<String>)],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        for w in words::split(&ins.rest(), self.df.escape) {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(self.df.error(ins.line, format!("ARG {w:?}: invalid name")));
            }
            self.used_args.insert(name.clone());
            let value = match (self.o.build_args.get(&name), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    words::expand(&d, self.df.escape, lookup)
                        .map_err(|e| self.df.error(ins.line, e))?,
                ),
                (None, None) => global
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.clone()),
            };
            out.push((name, value));
        }
        Ok(out)
    }

    fn stage(&mut self, i: usize) -> Result<State> {
        let stage = self.stages[i].clone();
        let (mut st, triggers) = self.step_wrap(&stage.from, |b| b.from(&stage))?;
        self.total += triggers.len();
        for t in triggers.iter().chain(stage.body.iter()) {
            self.step_wrap(t, |b| b.instruction(&mut st, i, t))?;
        }
        Ok(st)
    }

    /// Prints the step line, runs it, names the step in its error.
    fn step_wrap<T>(
        &mut self,
        ins: &Instruction,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        self.step += 1;
        self.say(format!("STEP {}/{}: {}", self.step, self.total, ins.text));
        let r = if sys::interrupted() {
            Err(Error::Invalid("interrupted".into()))
        } else {
            f(self).map_err(|e| match sys::interrupted() {
                true => Error::Invalid(format!("interrupted ({e})")),
                false => e,
            })
        };
        r.map_err(|e| Error::Step {
            step: self.step,
            total: self.total,
            instruction: ins.text.clone(),
            cause: Box::new(e),
        })
    }

    /// FROM: the base image (a stage, an image in the store or a registry, or scratch) and
    /// its ONBUILD triggers, which run next.
    fn from(&mut self, stage: &Stage) -> Result<(State, Vec<Instruction>)> {
        if let Some(p) = stage.from.flag("platform") {
            let p = words::expand(p, self.df.escape, &|k| self.global_value(k))
                .map_err(|e| self.df.error(stage.from.line, e))?;
            let here = format!("linux/{}", host_arch());
            if p != here && !p.starts_with(&format!("{here}/")) {
                return Err(self.df.error(
                    stage.from.line,
                    format!("--platform={p}: only {here} images are built on this host"),
                ));
            }
        }
        let (md, key) = if stage.base.eq_ignore_ascii_case("scratch") {
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MT_MANIFEST.into()),
                config: Descriptor {
                    media_type: MT_CONFIG.into(),
                    digest: Digest::of_bytes(b""),
                    size: 0,
                    annotations: None,
                    platform: None,
                    urls: None,
                },
                layers: Vec::new(),
                annotations: None,
            };
            let config = ImageConfig {
                architecture: host_arch().into(),
                os: "linux".into(),
                rootfs: RootFs {
                    typ: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..Default::default()
            };
            let (md, _) = store_image(self.store, &manifest, &config)?;
            (
                md,
                cache::key(&Digest::of_bytes(b"scratch"), &["FROM scratch"]),
            )
        } else {
            let md = match stages::find(&self.stages, &stage.base, stage.index) {
                Some(j) => self.done[j].clone().expect("stages build in order").md,
                None => self.resolve_image(&stage.base)?.1,
            };
            let m = self.store.manifest(&md)?;
            (md, cache::key(&m.config.digest, &["FROM"]))
        };
        let manifest = self.store.manifest(&md)?;
        let mut config = self.store.config(&manifest.config.digest)?;
        let mut triggers = Vec::new();
        if let Some(ec) = config.config.as_mut() {
            if let Some(serde_json::Value::Array(t)) = ec.extra.remove("OnBuild") {
                for (n, v) in t.iter().enumerate() {
                    let s = v.as_str().unwrap_or_default();
                    let ins = parse::parse_instruction(&self.df.file, stage.from.line, s).map_err(
                        |e| {
                            Error::Invalid(format!(
                                "ONBUILD trigger {} of {}: {e}",
                                n + 1,
                                stage.base
                            ))
                        },
                    )?;
                    triggers.push(ins);
                }
            }
        }
        let shell = config
            .config
            .as_ref()
            .and_then(|ec| ec.extra.get("Shell"))
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_else(|| DEFAULT_SHELL.map(String::from).to_vec());
        self.say(format!("--> {}", manifest.config.digest.short()));
        Ok((
            State {
                md,
                manifest,
                config,
                key,
                args: Vec::new(),
                shell,
                cmd_set: false,
            },
            triggers,
        ))
    }

    fn global_value(&self, k: &str) -> Option<String> {
        self.global
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    }

    /// An image by name: in the store (also under its fully qualified name), else pulled.
    fn resolve_image(&self, name: &str) -> Result<(String, Digest)> {
        if let Ok((n, md)) = self.store.resolve(name) {
            return Ok((n.unwrap_or_else(|| name.to_string()), md));
        }
        #[cfg(feature = "registry")]
        {
            if let Ok(conf) = crate::registry::conf::Conf::load() {
                for r in conf.qualify(name).unwrap_or_default() {
                    if let Ok((n, md)) = self.store.resolve(&r.to_string()) {
                        return Ok((n.unwrap_or_else(|| r.to_string()), md));
                    }
                }
            }
            if let Some(po) = &self.o.pull {
                self.say(format!("pulling {name}"));
                let r = crate::pull::pull(self.store, name, po)?;
                return Ok((r.name, r.manifest));
            }
        }
        Err(Error::NoImage(name.to_string()))
    }

    /// One instruction after FROM.
    fn instruction(&mut self, st: &mut State, stage: usize, ins: &Instruction) -> Result<()> {
        let line = ins.line;
        // what the build keeps beside the image changes whether or not the step is cached
        let mut extra = String::new();
        match ins.keyword.as_str() {
            "ARG" => {
                let global = self.global.clone();
                let decl = {
                    let lookup = |k: &str| st.lookup(k);
                    self.declare_args(ins, &global, &lookup)?
                };
                st.args.extend(decl);
            }
            "SHELL" => {
                if let Args::Json(v) = &ins.args {
                    if v.is_empty() {
                        return Err(self.df.error(line, "SHELL needs at least one word"));
                    }
                    st.shell = v.clone();
                }
            }
            "CMD" => st.cmd_set = true,
            "COPY" | "ADD" => extra = self.copy_input(st, stage, ins)?,
            _ => {}
        }
        let key = cache::key(&st.key, &[&ins.text, &st.args_key(), &extra]);
        if !self.o.no_cache {
            if let Some(md) = cache::get(self.store, &key) {
                st.manifest = self.store.manifest(&md)?;
                st.config = self.store.config(&st.manifest.config.digest)?;
                st.md = md;
                st.key = key;
                self.cached += 1;
                self.say(format!("--> using cache {}", st.id().short()));
                return Ok(());
            }
        }
        let before = st.config.clone();
        let created_by = match ins.keyword.as_str() {
            "RUN" => self.run_step(st, ins)?,
            "COPY" | "ADD" => self.copy_step(st, stage, ins)?,
            _ => {
                self.config_step(st, ins)
                    .map_err(|e| self.df.error(line, format!("{}: {e}", ins.keyword)))?;
                format!("/bin/sh -c #(nop) {}", ins.text)
            }
        };
        let layer = st.config.rootfs.diff_ids.len() > before.rootfs.diff_ids.len();
        let now = now_rfc3339();
        st.config.history.push(History {
            created: Some(now.clone()),
            created_by: Some(created_by),
            empty_layer: !layer,
            ..Default::default()
        });
        st.config.created = Some(now);
        let m = oci_manifest(&st.manifest);
        let (md, _) = store_image(self.store, &m, &st.config)?;
        st.manifest = self.store.manifest(&md)?;
        st.md = md;
        st.key = key;
        cache::put(self.store, &st.key, &st.md)?;
        self.say(format!("--> {}", st.id().short()));
        Ok(())
    }

    /// The config-only instructions.
    fn config_step(
        &mut self,
        st: &mut State,
        ins: &Instruction,
    ) -> std::result::Result<(), String> {
        let esc = self.df.escape;
        let text = ins.rest();
        let snapshot = st.config.config.clone().unwrap_or_default();
        let args = st.args.clone();
        let lookup = move |k: &str| {
            meta::get_env(&snapshot, k).or_else(|| {
                args.iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| v.clone())
            })
        };
        let one = |what: &str| -> std::result::Result<String, String> {
            let v = words::expand(text.trim(), esc, &lookup)?;
            if v.is_empty() {
                return Err(format!("{what} is empty"));
            }
            Ok(v)
        };
        match ins.keyword.as_str() {
            "ARG" => {}
            "ENV" => {
                for (k, v) in meta::pairs(&text, esc, &lookup)? {
                    meta::set_env(st.exec(), &k, &v);
                }
            }
            "LABEL" => {
                for (k, v) in meta::pairs(&text, esc, &lookup)? {
                    st.exec()
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, v);
                }
            }
            "MAINTAINER" => st.config.author = Some(one("MAINTAINER")?),
            "EXPOSE" => {
                let ports = meta::ports(&words::expand_all(&text, esc, &lookup)?)?;
                let m = st.exec().exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    m.insert(p, json!({}));
                }
            }
            "VOLUME" => {
                let vols = match &ins.args {
                    Args::Json(v) => v
                        .iter()
                        .map(|w| words::expand(w, esc, &lookup))
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                    Args::Text(t) => words::expand_all(t, esc, &lookup)?,
                };
                if vols.iter().any(|v| v.trim().is_empty()) {
                    return Err("a volume path is empty".into());
                }
                let m = st.exec().volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    m.insert(v, json!({}));
                }
            }
            "USER" => st.exec().user = Some(one("USER")?),
            "WORKDIR" => {
                let w = one("WORKDIR")?;
                let cur = st.exec().working_dir.clone();
                st.exec().working_dir = Some(meta::workdir(cur.as_deref(), &w));
            }
            "STOPSIGNAL" => st.exec().stop_signal = Some(one("STOPSIGNAL")?),
            "CMD" => {
                let c = meta::command(&ins.args, &st.shell);
                st.exec().cmd = Some(c);
            }
            "ENTRYPOINT" => {
                let c = meta::command(&ins.args, &st.shell);
                let cmd_set = st.cmd_set;
                let ec = st.exec();
                ec.entrypoint = Some(c);
                // docker: an ENTRYPOINT drops the base image's CMD
                if !cmd_set {
                    ec.cmd = None;
                }
            }
            "SHELL" => {
                let s = st.shell.clone();
                st.exec().extra.insert("Shell".into(), json!(s));
            }
            "HEALTHCHECK" => {
                let hc = meta::healthcheck(ins)?;
                st.exec().extra.insert("Healthcheck".into(), hc);
            }
            "ONBUILD" => {
                let trigger = text.trim().to_string();
                let ec = st.exec();
                let list = ec.extra.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                list.as_array_mut().expect("array").push(json!(trigger));
            }
            k => return Err(format!("{k} is not a config instruction")),
        }
        Ok(())
    }

    /// A bundle of the image `md` under the build's temp dir.
    fn bundle(&mut self, md: &Digest, what: &str, mount_targets: bool) -> Result<StepBundle<'a>> {
        self.bundles += 1;
        let dir = self.tmp.path().join(format!("bundle-{}", self.bundles));
        let c = bundle::create_for(
            self.store,
            what,
            md,
            &dir,
            &BundleOptions {
                spec: false,
                mount_targets,
                // the writable layer is committed (moved into the store) or thrown away
                volatile: true,
                ..Default::default()
            },
        )?;
        Ok(StepBundle {
            store: self.store,
            c,
        })
    }

    /// Commits the step bundle's writable layer as the state's next layer.
    fn add_layer(&self, st: &mut State, c: &Container) -> Result<()> {
        // the step's bundle goes right after: its upper dir becomes the layer
        let layer = commit_layer(self.store, c, LayerFrom::MoveUpper)?;
        st.config.rootfs.diff_ids.push(layer.diff_id);
        st.manifest.layers.push(layer.descriptor);
        Ok(())
    }

    fn run_step(&mut self, st: &mut State, ins: &Instruction) -> Result<String> {
        let args = meta::command(&ins.args, &st.shell);
        if args.is_empty() || args[0].is_empty() {
            return Err(self.df.error(ins.line, "RUN has no command"));
        }
        let network = match ins.flag("network") {
            None | Some("default") => self.o.network,
            Some(n) => n
                .parse()
                .map_err(|e: Error| self.df.error(ins.line, e.to_string()))?,
        };
        let runtime = self.o.runtime.clone().ok_or_else(|| {
            Error::Invalid(
                "no OCI runtime for RUN: capsa is neither next to capsa-image nor on PATH \
                 (give --runtime or CAPSA_RUNTIME)"
                    .into(),
            )
        })?;
        let build_env = st.build_env();
        let mut created_by = match &ins.args {
            Args::Json(v) => v.join(" "),
            Args::Text(t) => format!("{} {t}", st.shell.join(" ")),
        };
        if !build_env.is_empty() {
            created_by = format!("|{} {} {created_by}", build_env.len(), build_env.join(" "));
        }
        let md = st.md.clone();
        let config = st.config.clone();
        let tmp = self.tmp.path().to_path_buf();
        let quiet = self.o.quiet;
        let b = self.bundle(&md, &format!("build step {}", self.step), true)?;
        let root = sys::open_dir(&b.c.rootfs()).ctx(|| "open the step's rootfs")?;
        // the workdir exists when the command starts (it lands in this step's layer)
        if let Some(w) = config
            .config
            .as_ref()
            .and_then(|e| e.working_dir.as_deref())
        {
            fscopy::mkdir_in_root(&root, &clean(w), (0, 0))
                .ctx(|| format!("make the workdir {w}"))?;
        }
        drop(root);
        run::run(
            &b.c,
            &config,
            &run::RunStep {
                args,
                build_env,
                network,
                runtime: &runtime,
                cgroup_parent: self.o.cgroup_parent.as_deref(),
                tmp: &tmp,
                quiet,
            },
        )?;
        let c = b.c.clone();
        self.add_layer(st, &c)?;
        drop(b);
        Ok(created_by)
    }

    /// Where a COPY/ADD reads from: the context, or another stage's (or image's) rootfs.
    fn copy_from(&self, stage: usize, ins: &Instruction, st: &State) -> Result<Option<Digest>> {
        let Some(f) = ins.flag("from") else {
            return Ok(None);
        };
        let f = words::expand(f, self.df.escape, &|k| st.lookup(k))
            .map_err(|e| self.df.error(ins.line, e))?;
        if let Some(j) = stages::find(&self.stages, &f, stage) {
            return Ok(Some(
                self.done[j].clone().expect("stages build in order").md,
            ));
        }
        if let Ok(n) = f.parse::<usize>() {
            return Err(self.df.error(
                ins.line,
                format!("--from={n}: there is no stage {n} before this one"),
            ));
        }
        Ok(Some(self.resolve_image(&f)?.1))
    }

    /// The sources and destination words of a COPY/ADD.
    fn copy_words(&self, st: &State, ins: &Instruction) -> Result<(Vec<String>, String)> {
        let lookup = |k: &str| st.lookup(k);
        let mut ws = match &ins.args {
            Args::Json(v) => v
                .iter()
                .map(|w| words::expand(w, self.df.escape, &lookup))
                .collect::<std::result::Result<Vec<_>, _>>(),
            Args::Text(t) => words::expand_all(t, self.df.escape, &lookup),
        }
        .map_err(|e| self.df.error(ins.line, e))?;
        if ws.len() < 2 {
            return Err(self.df.error(
                ins.line,
                format!("{} needs a source and a destination", ins.keyword),
            ));
        }
        let dest = ws.pop().expect("two words");
        for s in &ws {
            if s.contains("://") || s.starts_with("git@") {
                return Err(self.df.error(
                    ins.line,
                    format!("{} of a URL ({s}) is not supported", ins.keyword),
                ));
            }
        }
        Ok((ws, dest))
    }

    /// Resolves the sources in `root`: wildcards expanded, .dockerignore applied for the
    /// context (`ignore`).
    fn sources(
        &self,
        root: &OwnedFd,
        srcs: &[String],
        ignore: Option<&Ignore>,
        ins: &Instruction,
    ) -> Result<Vec<Source>> {
        // an excluded directory something below which is re-included is a source all the same
        let excluded =
            |p: &[String]| ignore.is_some_and(|i| i.excluded(p) && !i.may_reinclude_below(p));
        let where_ = if ignore.is_some() {
            "the build context"
        } else {
            "the --from image"
        };
        let mut out = Vec::new();
        for s in srcs {
            let comps = clean(s);
            if has_wildcard(s) {
                let found =
                    fscopy::glob(root, &comps, &excluded).ctx(|| format!("{} {s}", ins.keyword))?;
                if found.is_empty() {
                    return Err(self
                        .df
                        .error(ins.line, format!("{s}: no file in {where_} matches")));
                }
                for f in found {
                    out.push(
                        fscopy::open_source(root, &f)
                            .ctx(|| format!("{} {}", ins.keyword, f.join("/")))?,
                    );
                }
                continue;
            }
            if !comps.is_empty() && excluded(&comps) {
                return Err(self.df.error(
                    ins.line,
                    format!("{s}: excluded from the build context by .dockerignore"),
                ));
            }
            match fscopy::open_source(root, &comps) {
                Ok(src) => out.push(src),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(self.df.error(
                        ins.line,
                        format!("{s}: no such file or directory in {where_}"),
                    ))
                }
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("{} {s}", ins.keyword),
                        source: e,
                    })
                }
            }
        }
        Ok(out)
    }

    /// The cache input of a COPY/ADD: a digest of the context files it copies, or the id of
    /// the image it copies from.
    fn copy_input(&mut self, st: &State, stage: usize, ins: &Instruction) -> Result<String> {
        if let Some(md) = self.copy_from(stage, ins, st)? {
            return Ok(format!("from {md}"));
        }
        let (srcs, _) = self.copy_words(st, ins)?;
        let sources = self.sources(&self.context, &srcs, Some(&self.ignore), ins)?;
        let mut h = TreeHash::new(Some(self.ignore.clone()));
        for s in &sources {
            h.add(s).ctx(|| format!("read {}", s.rel.join("/")))?;
        }
        let d = h.finish();
        self.copy_digest = Some(d.clone());
        Ok(d.to_string())
    }

    fn copy_step(&mut self, st: &mut State, stage: usize, ins: &Instruction) -> Result<String> {
        let (srcs, dest) = self.copy_words(st, ins)?;
        let lookup = |k: &str| st.lookup(k);
        let chown = ins
            .flag("chown")
            .map(|c| words::expand(c, self.df.escape, &lookup))
            .transpose()
            .map_err(|e| self.df.error(ins.line, e))?;
        let chmod = match ins.flag("chmod") {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| {
                        self.df
                            .error(ins.line, format!("--chmod={m}: an octal mode is expected"))
                    })?,
            ),
        };
        let from = self.copy_from(stage, ins, st)?;
        // the source root: the context, or the --from image mounted for this step
        let src_bundle = match &from {
            Some(md) => {
                Some(self.bundle(md, &format!("build step {} (source)", self.step), false)?)
            }
            None => None,
        };
        let src_root = match &src_bundle {
            Some(b) => sys::open_dir(&b.c.rootfs()).ctx(|| "open the --from rootfs")?,
            None => sys::open_dir(&self.o.context).ctx(|| "open the context")?,
        };
        let ignore = from.is_none().then(|| self.ignore.clone());
        let sources = self.sources(&src_root, &srcs, ignore.as_ref(), ins)?;
        // the digest in the history: of the files copied (the context's was made for the
        // cache key), and of the attributes given to them
        let files = match (from.is_none(), self.copy_digest.take()) {
            (true, Some(d)) => d,
            _ => {
                let mut h = TreeHash::new(ignore.clone());
                for s in &sources {
                    h.add(s).ctx(|| format!("read {}", s.rel.join("/")))?;
                }
                h.finish()
            }
        };
        let mut digest = TreeHash::new(None);
        digest.note(format!("{files} {chown:?} {chmod:?}").as_bytes());
        let digest = digest.finish();

        let md = st.md.clone();
        let workdir = st
            .config
            .config
            .as_ref()
            .and_then(|e| e.working_dir.clone())
            .unwrap_or_else(|| "/".into());
        let b = self.bundle(&md, &format!("build step {}", self.step), false)?;
        let rootfs = b.c.rootfs();
        let owner = match &chown {
            Some(c) => chown_ids(&rootfs, c).map_err(|e| self.df.error(ins.line, e.to_string()))?,
            None => (0, 0),
        };
        let root = sys::open_dir(&rootfs).ctx(|| "open the step's rootfs")?;
        let dir_form = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
        if sources.len() > 1 && !dir_form {
            return Err(self.df.error(
                ins.line,
                format!(
                    "{} of more than one source needs a directory destination ending in / (not {dest})",
                    ins.keyword
                ),
            ));
        }
        let abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{workdir}/{dest}")
        };
        let dest_c = clean(&abs);
        let excluded = |p: &[String]| ignore.as_ref().is_some_and(|i| i.excluded(p));
        let reinclude = |p: &[String]| ignore.as_ref().is_some_and(|i| i.may_reinclude_below(p));
        let is_add = ins.keyword == "ADD";
        let what = format!("{} to {dest}", ins.keyword);
        for src in &sources {
            let attrs = Attrs {
                owner: Some(owner),
                chmod,
            };
            let mut copier = Copier::new(attrs, &excluded, &reinclude);
            if src.is_dir() {
                let dst =
                    Rc::new(fscopy::mkdir_in_root(&root, &dest_c, owner).ctx(|| what.clone())?);
                copier
                    .copy_dir_contents(&src.fd, &src.rel, &dst)
                    .ctx(|| format!("copy {} {what}", src.rel.join("/")))?;
            } else if is_add && fscopy::is_archive(src).ctx(|| what.clone())? {
                let dst = fscopy::mkdir_in_root(&root, &dest_c, owner).ctx(|| what.clone())?;
                let attrs = Attrs {
                    owner: chown.as_ref().map(|_| owner),
                    chmod,
                };
                fscopy::extract(src, &dst, attrs)
                    .ctx(|| format!("unpack {} {what}", src.rel.join("/")))?;
            } else {
                if src.st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(self.df.error(
                        ins.line,
                        format!("{}: not a regular file or a directory", src.rel.join("/")),
                    ));
                }
                let (dir, name) = if dir_form || fscopy::is_dir_in_root(&root, &dest_c) {
                    (
                        fscopy::mkdir_in_root(&root, &dest_c, owner).ctx(|| what.clone())?,
                        src.base_name().to_string(),
                    )
                } else {
                    let (name, parent) = dest_c.split_last().expect("not the root: a directory");
                    (
                        fscopy::mkdir_in_root(&root, parent, (0, 0)).ctx(|| what.clone())?,
                        name.clone(),
                    )
                };
                let mut f = src.open().ctx(|| format!("open {}", src.rel.join("/")))?;
                copier
                    .copy_file(&mut f, &src.st, &Rc::new(dir), std::ffi::OsStr::new(&name))
                    .ctx(|| format!("copy {} {what}", src.rel.join("/")))?;
            }
        }
        let kind = match sources.as_slice() {
            [s] if s.is_dir() => "dir",
            [_] => "file",
            _ => "multi",
        };
        // nothing may hold the mounts open when they are removed
        drop(sources);
        drop(src_root);
        drop(root);
        drop(src_bundle);
        let c = b.c.clone();
        self.add_layer(st, &c)?;
        drop(b);
        Ok(format!(
            "/bin/sh -c #(nop) {} {kind}:{} in {dest} ",
            ins.keyword,
            digest.hex()
        ))
    }
}

/// `--chown=user[:group]` in the image: names through its /etc/passwd and /etc/group; a user
/// without a group gets the group of the same number (docker's rule).
fn chown_ids(rootfs: &Path, spec: &str) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = crate::user::resolve(rootfs, u)
        .map_err(|e| Error::Invalid(format!("--chown={spec}: {e}")))?
        .uid;
    let gid = match g {
        Some(g) => {
            crate::user::resolve(rootfs, &format!("0:{g}"))
                .map_err(|e| Error::Invalid(format!("--chown={spec}: {e}")))?
                .gid
        }
        None => uid,
    };
    Ok((uid, gid))
}

/// The manifest a build writes: OCI media types throughout (a docker base's layers keep
/// their blobs, under the OCI names of the same formats).
fn oci_manifest(m: &Manifest) -> Manifest {
    let mut m = m.clone();
    m.media_type = Some(MT_MANIFEST.into());
    m.config.media_type = MT_CONFIG.into();
    m.annotations = None;
    for l in &mut m.layers {
        l.media_type = match l.media_type.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                "application/vnd.oci.image.layer.v1.tar+gzip".into()
            }
            "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
                "application/vnd.oci.image.layer.v1.tar+zstd".into()
            }
            "application/vnd.docker.image.rootfs.diff.tar" => {
                "application/vnd.oci.image.layer.v1.tar".into()
            }
            other => other.to_string(),
        };
    }
    m
}

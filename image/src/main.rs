//! capsa-image command line.
#![deny(unsafe_code)]
use anyhow::{Context, Result};
use capsa_image::{
    build, bundle, commit, export, gc, import, info, pull, push, registry, size::human,
    store::Store,
};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "capsa-image",
    version,
    about = "Layered OCI images to runtime bundles"
)]
struct Cli {
    /// Store directory
    #[arg(long, global = true, default_value = capsa_image::store::DEFAULT_STORE, env = "CAPSA_IMAGE_STORE")]
    store: PathBuf,
    /// Log at debug level
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import an OCI image layout (dir), an oci-archive or a docker-archive (tar)
    Import {
        source: PathBuf,
        /// Name for the image (the source must hold exactly one)
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull an image from a registry (REF: [HOST/]NAME[:TAG][@DIGEST]; short names per registries.conf)
    Pull {
        reference: String,
        #[command(flatten)]
        net: NetArgs,
        /// OS/ARCH[/VARIANT] to choose from an image index (default: linux/this host's arch)
        #[arg(long)]
        platform: Option<String>,
        /// Blobs downloaded at once
        #[arg(long, default_value_t = 3)]
        jobs: usize,
        /// No progress bars
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Push a stored image to a registry (DEST: HOST/NAME[:TAG]; default: the image's ref)
    Push {
        image: String,
        dest: Option<String>,
        #[command(flatten)]
        net: NetArgs,
        /// Upload blobs in PATCH chunks of this many bytes (default: one PUT per blob)
        #[arg(long)]
        chunk_size: Option<u64>,
        /// No progress bars
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Check credentials against a registry and store them in the auth file
    Login {
        host: String,
        #[arg(long, short = 'u')]
        username: String,
        #[arg(long, short = 'p', conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Remove a registry's credentials from the auth file
    Logout {
        host: String,
        /// Auth file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
        #[arg(long)]
        authfile: Option<PathBuf>,
    },
    /// Make a runtime bundle (config.json + rootfs) of IMAGE in DIR; ARGS after -- replace Cmd
    Bundle {
        image: String,
        dir: PathBuf,
        /// Plain copied rootfs instead of an overlay mount
        #[arg(long)]
        copy: bool,
        /// process.terminal = true
        #[arg(long, short = 't')]
        tty: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Unmount and remove a bundle and its writable layer
    Rm { bundles: Vec<String> },
    /// Turn a bundle's writable layer into a new image NEW_REF
    Commit {
        bundle: String,
        new_ref: String,
        #[arg(long, short = 'm')]
        message: Option<String>,
    },
    /// List images: ref, id, created, size, shared size
    Images {
        /// JSON output (sizes in bytes)
        #[arg(long)]
        json: bool,
    },
    /// List bundles: size (writable layer) and virtual size (plus the image)
    Ls {
        /// JSON output (sizes in bytes)
        #[arg(long)]
        json: bool,
    },
    /// Show an image's history
    History {
        image: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove image refs
    Rmi {
        images: Vec<String>,
        /// Remove even if bundles use the image
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Remove blobs and layers that no image, no bundle and no build cache entry uses
    Gc {
        /// Drop the build cache first (its images go too unless tagged)
        #[arg(long)]
        build_cache: bool,
    },
    /// Build an image from a Dockerfile; RUN steps run in bundles by an OCI runtime (capsa)
    Build {
        /// The build context: the directory COPY and ADD read from
        context: PathBuf,
        /// The Dockerfile (default: CONTEXT/Dockerfile; `-`: stdin)
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Name the image (repeatable)
        #[arg(long, short = 't')]
        tag: Vec<String>,
        /// KEY=VALUE for an ARG (KEY alone: the value of $KEY here)
        #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
        build_arg: Vec<String>,
        /// Build this stage (and what it needs), not the last
        #[arg(long)]
        target: Option<String>,
        /// Run every step, use no cached one
        #[arg(long)]
        no_cache: bool,
        /// Network of RUN steps: none (a namespace of their own) or host
        #[arg(long, default_value = "host", value_parser = ["none", "host"])]
        network: String,
        /// OCI runtime for RUN steps (default: capsa next to capsa-image, else on PATH)
        #[arg(long, env = "CAPSA_RUNTIME")]
        runtime: Option<PathBuf>,
        /// The cgroup RUN steps' cgroups go under (PARENT/capsa-build-ID; default: the root)
        #[arg(long, value_name = "PARENT")]
        cgroup_parent: Option<String>,
        /// Print only the image id (RUN output only when a step fails)
        #[arg(long, short = 'q')]
        quiet: bool,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Export an image to an OCI layout dir, an oci-archive or a docker-archive
    Export {
        image: String,
        out: PathBuf,
        /// oci (directory), oci-archive or docker-archive (default: oci for a dir, else oci-archive)
        #[arg(long)]
        format: Option<String>,
    },
}

/// How to reach a registry.
#[derive(clap::Args)]
struct NetArgs {
    /// USER:PASSWORD (else the auth file, else ~/.docker/config.json)
    #[arg(long)]
    creds: Option<String>,
    /// Auth file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
    #[arg(long)]
    authfile: Option<PathBuf>,
    /// Verify the registry's TLS certificate
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    tls_verify: bool,
    /// Directory of extra CA certificates (*.crt)
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Plain HTTP instead of HTTPS
    #[arg(long)]
    plain_http: bool,
}

impl NetArgs {
    fn options(&self) -> Result<registry::Options> {
        Ok(registry::Options {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            plain_http: self.plain_http,
            creds: self
                .creds
                .as_deref()
                .map(registry::auth::Creds::parse)
                .transpose()?,
            authfile: self.authfile.clone(),
        })
    }
}

/// Progress bars only on a terminal, and not with --quiet.
fn show_progress(quiet: bool) -> bool {
    use std::io::IsTerminal;
    !quiet && std::io::stderr().is_terminal()
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if cli.debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        })
        .init();
    if let Err(e) = run(cli) {
        eprintln!("capsa-image: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let store = Store::open(&cli.store)?;
    match cli.cmd {
        Cmd::Import { source, name } => import_cmd(&store, &source, name.as_deref()),
        Cmd::Pull {
            reference,
            net,
            platform,
            jobs,
            quiet,
        } => {
            let o = pull::PullOptions {
                net: net.options()?,
                platform,
                jobs,
                progress: show_progress(quiet),
            };
            let r =
                pull::pull(&store, &reference, &o).with_context(|| format!("pull {reference}"))?;
            println!(
                "{}\t{}\t{} layers fetched, {} unpacked, {} already in the store",
                r.name, r.config, r.layers_fetched, r.layers_unpacked, r.layers_reused
            );
            Ok(())
        }
        Cmd::Push {
            image,
            dest,
            net,
            chunk_size,
            quiet,
        } => {
            let o = push::PushOptions {
                net: net.options()?,
                chunk: chunk_size,
                progress: show_progress(quiet),
            };
            let r = push::push(&store, &image, dest.as_deref(), &o)
                .with_context(|| format!("push {image}"))?;
            println!(
                "{}\t{}\t{} blobs uploaded, {} mounted, {} already there",
                r.reference,
                r.manifest.map(|d| d.to_string()).unwrap_or_default(),
                r.uploaded,
                r.mounted,
                r.existed
            );
            Ok(())
        }
        Cmd::Login {
            host,
            username,
            password,
            password_stdin,
            net,
        } => login_cmd(&host, username, password, password_stdin, &net),
        Cmd::Logout { host, authfile } => {
            let f = authfile.unwrap_or_else(registry::auth::default_auth_file);
            if !registry::auth::remove(&f, &host)? {
                anyhow::bail!("not logged in to {host} (in {})", f.display());
            }
            println!("removed login for {host} from {}", f.display());
            Ok(())
        }
        Cmd::Bundle {
            image,
            dir,
            copy,
            tty,
            args,
        } => {
            let opts = bundle::BundleOptions {
                copy,
                cmd: if args.is_empty() { None } else { Some(args) },
                tty,
                ..Default::default()
            };
            let c = bundle::create(&store, &image, &dir, &opts)
                .with_context(|| format!("bundle {image} in {}", dir.display()))?;
            println!("{}", c.bundle.display());
            Ok(())
        }
        Cmd::Rm { bundles } => {
            for b in bundles {
                let c = bundle::remove(&store, &b).with_context(|| format!("rm {b}"))?;
                println!("{}", c.bundle.display());
            }
            Ok(())
        }
        Cmd::Commit {
            bundle,
            new_ref,
            message,
        } => {
            let c = commit::commit(&store, &bundle, &new_ref, message.as_deref())
                .with_context(|| format!("commit {bundle}"))?;
            println!("{}\t{}", c.name, c.config);
            Ok(())
        }
        Cmd::Images { json } => images_cmd(&store, json),
        Cmd::Ls { json } => ls_cmd(&store, json),
        Cmd::History { image, json } => history_cmd(&store, &image, json),
        Cmd::Rmi { images, force } => {
            let (removed, r) = gc::rmi(&store, &images, force)?;
            for n in removed {
                println!("untagged {n}");
            }
            print_removed(&r);
            Ok(())
        }
        Cmd::Gc { build_cache } => {
            if build_cache {
                let n = build::cache::clear(&store)?;
                println!("dropped {n} build cache entries");
            }
            print_removed(&gc::gc(&store)?);
            Ok(())
        }
        Cmd::Build {
            context,
            file,
            tag,
            build_arg,
            target,
            no_cache,
            network,
            runtime,
            cgroup_parent,
            quiet,
            net,
        } => {
            let mut build_args = std::collections::BTreeMap::new();
            for a in build_arg {
                match a.split_once('=') {
                    Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
                    None => match std::env::var(&a) {
                        Ok(v) => build_args.insert(a, v),
                        Err(_) => continue,
                    },
                };
            }
            let o = build::BuildOptions {
                context: context.clone(),
                dockerfile: file,
                tags: tag,
                build_args,
                target,
                no_cache,
                network: network.parse()?,
                runtime: runtime.or_else(default_runtime),
                cgroup_parent,
                quiet,
                pull: Some(pull::PullOptions {
                    net: net.options()?,
                    platform: None,
                    jobs: 3,
                    progress: show_progress(quiet),
                }),
            };
            let b =
                build::build(&store, &o).with_context(|| format!("build {}", context.display()))?;
            println!("{}", b.config);
            Ok(())
        }
        Cmd::Export { image, out, format } => export_cmd(&store, &image, &out, format),
    }
}

/// `capsa` next to this binary, else on PATH.
fn default_runtime() -> Option<PathBuf> {
    if let Some(p) = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("capsa"))
        .filter(|p| p.is_file())
    {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("capsa"))
        .find(|p| p.is_file())
}

fn import_cmd(store: &Store, source: &Path, name: Option<&str>) -> Result<()> {
    let res = import::import(store, source, name)
        .with_context(|| format!("import {}", source.display()))?;
    for r in res {
        println!(
            "{}\t{}\t{} layers unpacked, {} already in the store",
            r.name, r.config, r.layers_unpacked, r.layers_reused
        );
    }
    Ok(())
}

fn login_cmd(
    host: &str,
    user: String,
    password: Option<String>,
    password_stdin: bool,
    net: &NetArgs,
) -> Result<()> {
    let pass = match (password, password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!("login needs --password or --password-stdin"),
    };
    let creds = registry::auth::Creds { user, pass };
    let mut o = net.options()?;
    o.creds = Some(creds.clone());
    // a reference only to name the host: the check is GET /v2/ with these credentials
    let r = registry::Reference::with_host(host, "login-check", host)?;
    registry::Registry::connect(&r, &o, Vec::new()).with_context(|| format!("login {host}"))?;
    let f = net
        .authfile
        .clone()
        .unwrap_or_else(registry::auth::default_auth_file);
    registry::auth::store(&f, host, &creds)?;
    println!("login succeeded: {host} (stored in {})", f.display());
    Ok(())
}

fn images_cmd(store: &Store, json: bool) -> Result<()> {
    let imgs = info::images(store)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&imgs)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<12} {:<20} {:>10} {:>12}",
        "REF", "ID", "CREATED", "SIZE", "SHARED SIZE"
    );
    for i in imgs {
        println!(
            "{:<40} {:<12} {:<20} {:>10} {:>12}",
            i.name,
            i.id.short(),
            i.created.get(..19).unwrap_or(&i.created),
            human(i.size),
            human(i.shared_size)
        );
    }
    Ok(())
}

fn ls_cmd(store: &Store, json: bool) -> Result<()> {
    let bs = info::bundles(store)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&bs)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<30} {:<30} {:>10} {:>13}",
        "ID", "BUNDLE", "IMAGE", "SIZE", "VIRTUAL SIZE"
    );
    for b in bs {
        println!(
            "{:<16} {:<30} {:<30} {:>10} {:>13}",
            b.id,
            b.bundle,
            b.image,
            human(b.size),
            human(b.virtual_size)
        );
    }
    Ok(())
}

fn history_cmd(store: &Store, image: &str, json: bool) -> Result<()> {
    let rows = info::history(store, image)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>10}  {:<60} COMMENT",
        "CREATED", "SIZE", "CREATED BY"
    );
    for r in rows {
        let by: String = r.created_by.chars().take(60).collect();
        let size = if r.empty_layer {
            "0 B".to_string()
        } else {
            human(r.size)
        };
        println!(
            "{:<20} {:>10}  {:<60} {}",
            r.created.get(..19).unwrap_or(&r.created),
            size,
            by,
            r.comment
        );
    }
    Ok(())
}

fn print_removed(r: &gc::GcReport) {
    println!(
        "deleted {} blobs, {} layers ({})",
        r.blobs,
        r.layers,
        human(r.bytes)
    );
}

fn export_cmd(store: &Store, image: &str, out: &Path, format: Option<String>) -> Result<()> {
    let format: export::Format = match format {
        Some(f) => f.parse()?,
        None if out.extension().is_some_and(|e| e == "tar") => export::Format::OciArchive,
        None => export::Format::OciDir,
    };
    export::export(store, image, out, format)
        .with_context(|| format!("export {image} to {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

//! capsa-image command line.
use anyhow::{Context, Result};
use capsa_image::{bundle, import, size::human, store::Store};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    Images,
    /// List bundles: size (writable layer) and virtual size (plus the image)
    Ls,
    /// Show an image's history
    History { image: String },
    /// Remove image refs
    Rmi {
        images: Vec<String>,
        /// Remove even if bundles use the image
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Remove blobs and layers that no image and no bundle uses
    Gc,
    /// Export an image to an OCI layout dir, an oci-archive or a docker-archive
    Export {
        image: String,
        out: PathBuf,
        /// oci (directory), oci-archive or docker-archive (default: oci for a dir, else oci-archive)
        #[arg(long)]
        format: Option<String>,
    },
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
        Cmd::Import { source, name } => {
            let res = import::import(&store, &source, name.as_deref())
                .with_context(|| format!("import {}", source.display()))?;
            for r in res {
                println!(
                    "{}\t{}\t{} layers unpacked, {} already in the store",
                    r.name, r.config, r.layers_unpacked, r.layers_reused
                );
            }
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
            };
            let c = bundle::create(&store, &image, &dir, &opts)
                .with_context(|| format!("bundle {image} in {}", dir.display()))?;
            println!("{}", c.bundle.display());
        }
        Cmd::Rm { bundles } => {
            for b in bundles {
                let c = bundle::remove(&store, &b).with_context(|| format!("rm {b}"))?;
                println!("{}", c.bundle.display());
            }
        }
        Cmd::Images => {
            let _ = human(0);
            anyhow::bail!("not implemented yet");
        }
        _ => anyhow::bail!("not implemented yet"),
    }
    Ok(())
}

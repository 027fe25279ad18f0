//! capsa-image command line.
use anyhow::{Context, Result};
use capsa_image::{bundle, commit, export, gc, import, info, size::human, store::Store};
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
        Cmd::Import { source, name } => import_cmd(&store, &source, name.as_deref()),
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
        Cmd::Gc => {
            print_removed(&gc::gc(&store)?);
            Ok(())
        }
        Cmd::Export { image, out, format } => export_cmd(&store, &image, &out, format),
    }
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

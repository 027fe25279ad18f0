//! Registries: references, registries.conf, credentials, the distribution API client and
//! resumable blob downloads. `pull` and `push` (crate root) use them with the store.
pub mod auth;
pub mod client;
pub mod conf;
pub mod download;
pub mod reference;

pub use client::{Options, Registry};
pub use reference::Reference;

/// A progress bar per blob on a terminal (stderr), nothing otherwise.
pub fn progress(show: bool) -> indicatif::MultiProgress {
    let target = if show {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    indicatif::MultiProgress::with_draw_target(target)
}

/// One bar: short digest, bytes, rate.
pub fn bar(mp: &indicatif::MultiProgress, label: &str, size: u64) -> indicatif::ProgressBar {
    let b = mp.add(indicatif::ProgressBar::new(size));
    if let Ok(s) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
    ) {
        b.set_style(s.progress_chars("=> "));
    }
    b.set_prefix(label.to_string());
    b
}

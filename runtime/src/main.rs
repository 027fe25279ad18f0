//! The `capsa` binary: the runc-compatible command line over the capsa library.
#![deny(unsafe_code)]

fn main() {
    // CVE-2019-5736: commands that make container processes run from a sealed binary.
    if let Err(e) = capsa::exe_guard::ensure_sealed() {
        eprintln!("capsa: seal the runtime binary (CVE-2019-5736): {e}");
        std::process::exit(1);
    }
    std::process::exit(capsa::cli::main());
}

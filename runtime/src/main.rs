//! The `capsa` binary: the runc-compatible command line over the capsa library.
fn main() {
    std::process::exit(capsa::cli::main());
}

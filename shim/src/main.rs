//! containerd-shim-capsa-v2: placeholder until the shim issue lands.
fn main() {
    eprintln!("containerd-shim-capsa-v2: not implemented yet");
    std::process::exit(1);
}

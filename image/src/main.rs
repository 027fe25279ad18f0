//! capsa-image: placeholder until the image issue lands.
fn main() {
    eprintln!("capsa-image: not implemented yet");
    std::process::exit(1);
}

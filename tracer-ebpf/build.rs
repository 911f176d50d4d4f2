use which::which;

/// Rebuild the probes when bpf-linker changes, and fail early with a hint when it is missing.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => {
            println!("cargo:warning=bpf-linker not found on PATH; run `cargo xtask setup` first")
        }
    }
}

//! Builds the probes (`tracer-ebpf`) for the BPF target with the nightly toolchain
//! and bpf-linker, so `cargo build` at the root yields one binary with the probes inside.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("tracer-user has no parent directory"))?
        .join("tracer-ebpf");
    let root_dir = metadata
        .to_str()
        .context("tracer-ebpf path is not UTF-8")?
        .to_owned();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}

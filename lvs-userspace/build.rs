//! Builds the kernel programs (`lvs-ebpf`) for the BPF target with the nightly toolchain and
//! leaves the object in `OUT_DIR`, where `src/dataplane/object.rs` embeds it (as aya-template
//! does).

use std::path::PathBuf;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let root_dir = manifest_dir.join("../lvs-ebpf");
    let root_dir = root_dir.to_str().context("lvs-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name: "lvs-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}

//! Removes what labs of killed processes left behind (namespaces, their processes, bpffs
//! mounts and directories): `cargo xtask test` runs it after killing a test binary at its
//! deadline, so nothing of that binary's labs outlives the run.

fn main() -> anyhow::Result<()> {
    for ns in lvs::lab::cleanup_stale(lvs::lab::LAB_PREFIX)? {
        eprintln!("lvs-lab-cleanup: removed namespace {ns}");
    }
    Ok(())
}

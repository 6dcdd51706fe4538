//! The kernel programs, built by `build.rs` from `lvs-ebpf` and embedded in the binary.

/// The BPF object file holding `lvs_xdp`, `lvs_pass` and `lvs_floor` and their maps.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs"));

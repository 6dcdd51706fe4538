//! Reading the data plane's connection table from userspace: the whole table mapped read-only
//! (it is created `BPF_F_MMAPABLE`), so a walk is a scan of memory, not 65,536 syscalls.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::{Ebpf, maps::Map};
use lvs_common::{
    CtBucket, CtEntry,
    limits::{CT_BUCKETS, map_names},
};

/// Errors of reading the connection table.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The object has no connection table of the expected kind.
    #[error("no connection table {name} (an array map) in the data plane")]
    Missing {
        /// The map's name.
        name: &'static str,
    },
    /// mmap(2) of the table failed.
    #[error("mapping the connection table")]
    Map {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The connection table mapped read-only; unmapped on drop.
struct Mapping {
    ptr: NonNull<CtBucket>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region mmap(2) returned, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Calls `f` with a copy of every way of the table. The data plane goes on writing meanwhile:
/// a way copied while a writer held it has an odd sequence number ([`CtEntry::seq`]), and its
/// other fields may mix two flows.
pub fn for_each_way(ebpf: &Ebpf, mut f: impl FnMut(&CtEntry)) -> Result<(), ConntrackError> {
    let name = map_names::CONNTRACK;
    let Some(Map::Array(data)) = ebpf.map(name) else {
        return Err(ConntrackError::Missing { name });
    };
    let len = CT_BUCKETS as usize * size_of::<CtBucket>();
    // SAFETY: a read-only shared mapping of a BPF array map's values, of its exact size (a
    // multiple of the page size); the kernel checks the map allows it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            data.fd().as_fd().as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(ConntrackError::Map {
            source: std::io::Error::last_os_error(),
        });
    }
    let mapping = Mapping {
        ptr: NonNull::new(ptr.cast()).ok_or(ConntrackError::Missing { name })?,
        len,
    };
    for i in 0..CT_BUCKETS as usize {
        // SAFETY: within the mapping; a volatile copy, as the kernel writes the memory.
        let bucket = unsafe { std::ptr::read_volatile(mapping.ptr.as_ptr().add(i)) };
        bucket.ways.iter().for_each(&mut f);
    }
    Ok(())
}

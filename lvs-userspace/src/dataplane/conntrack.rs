//! The data plane's connection table from userspace: the whole table mapped (it is created
//! `BPF_F_MMAPABLE`), so a walk is a scan of memory, not a syscall per bucket; and flows put
//! into a new table when the agent resizes it ([`super::resize`]).

use std::{
    mem::offset_of,
    os::fd::{AsFd, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::{
    Ebpf,
    maps::{Map, MapData},
};
use lvs_common::{
    CtBucket, CtEntry, CtFlow, CtSlot, Dest, FlowKey,
    conntrack::{
        CT_DEST_OFFSET, CT_KEY_OFFSET, CT_REPLY, CT_SEEN_OFFSET, dest_word, next_seq, reply_word,
        seen_word, seq_tag, split_seq_tag,
    },
    dest::forward,
    hash::ct_place,
    limits::{CT_WAYS, map_names},
    nat::reply_key,
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
    /// The table's size could not be read.
    #[error("reading the size of the connection table: {source}")]
    Info {
        /// Why.
        #[source]
        source: aya::maps::MapError,
    },
    /// mmap(2) of the table failed.
    #[error("mapping the connection table")]
    Map {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A connection table mapped into this process; unmapped on drop.
pub struct Table {
    ptr: NonNull<CtBucket>,
    buckets: usize,
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the region mmap(2) returned, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len()) };
    }
}

/// Where a flow went in [`Table::insert`]: with the place of its way as a reply way points to
/// it ([`reply_word`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Into an empty way of its bucket.
    Added(u64),
    /// Nowhere: its bucket already holds the flow (a newer entry, kept), in that way.
    Present(u64),
    /// Nowhere: every way of its bucket is taken.
    Full,
}

impl Table {
    /// Maps the connection table `map` (read-only unless `writable`).
    pub fn map(map: &MapData, writable: bool) -> Result<Table, ConntrackError> {
        let buckets = map
            .info()
            .map_err(|source| ConntrackError::Info { source })?
            .max_entries() as usize;
        let len = buckets * size_of::<CtBucket>();
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a shared mapping of a BPF array map's values, of its exact size (a multiple
        // of the page size); the kernel checks the map allows it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ConntrackError::Map {
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Table {
            ptr: NonNull::new(ptr.cast()).ok_or(ConntrackError::Missing {
                name: map_names::CONNTRACK,
            })?,
            buckets,
        })
    }

    fn len(&self) -> usize {
        self.buckets * size_of::<CtBucket>()
    }

    /// The number of buckets.
    pub fn buckets(&self) -> usize {
        self.buckets
    }

    /// Calls `f` with a copy of every way of the table. The data plane goes on writing
    /// meanwhile: a way copied while a writer held it has an odd sequence number
    /// ([`CtEntry::seq`]), and its other fields may mix two flows.
    pub fn for_each_way(&self, mut f: impl FnMut(&CtEntry)) {
        self.for_each_way_at(|_, e| f(e));
    }

    /// [`Table::for_each_way`], with each way's place as a reply way points to it
    /// ([`reply_word`]).
    pub fn for_each_way_at(&self, mut f: impl FnMut(u64, &CtEntry)) {
        for i in 0..self.buckets {
            // SAFETY: within the mapping; a volatile copy, as the kernel writes the memory.
            let bucket = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(i)) };
            for (w, e) in bucket.ways().iter().enumerate() {
                f(reply_word(i as u32, w as u32), e);
            }
        }
    }

    /// Writes a reply way for each NATed flow of `flows` (a flow and its place in this table,
    /// from [`Table::insert`] or [`Table::for_each_way_at`]) whose destination slot, as
    /// `dest_of` gives it, still holds its generation and is NATed; seen at `now_ns`, under
    /// `seed`. Returns how many found their bucket full.
    pub fn insert_replies(
        &self,
        flows: &[(CtEntry, u64)],
        dest_of: impl Fn(u32) -> Option<Dest>,
        now_ns: u64,
        seed: u64,
    ) -> u64 {
        let mut unfit = 0;
        for (e, place) in flows {
            let Some(dest) = dest_of(e.dest) else {
                continue;
            };
            if dest.method != forward::MASQ || !dest.holds(e.generation) {
                continue;
            }
            let reply = reply_key(&e.key, &dest.addr, dest.port_be);
            if self.insert_reply(&reply, *place, now_ns, seed) == Inserted::Full {
                unfit += 1;
            }
        }
        unfit
    }

    /// Puts `entry`'s flow (key, destination, time and state) into its bucket under `seed`,
    /// in the first empty way, as the data plane's writers do (claiming the way's sequence
    /// lock with compare-and-exchange): the data plane may be writing the same table. The
    /// table must be mapped writable.
    pub fn insert(&self, entry: &CtEntry, seed: u64) -> Inserted {
        self.put(
            &entry.key,
            dest_word(entry.dest, entry.generation),
            entry.last_seen_ns,
            seed,
        )
    }

    /// Puts a reply way ([`CT_REPLY`]) for the replies `reply` of the flow at `flow` (where
    /// [`Table::insert`] put it) into its bucket under `seed`, seen at `now_ns`, as
    /// [`Table::insert`] puts a flow.
    pub fn insert_reply(&self, reply: &FlowKey, flow: u64, now_ns: u64, seed: u64) -> Inserted {
        self.put(reply, flow, seen_word(now_ns, CT_REPLY), seed)
    }

    fn put(&self, key: &FlowKey, pair: u64, seen: u64, seed: u64) -> Inserted {
        let mask = self.buckets as u32 - 1;
        let words = key.words();
        let (b, tag) = ct_place(&words, seed, mask);
        // SAFETY: `b` is below the number of buckets.
        let bucket = unsafe { self.ptr.as_ptr().add(b as usize) };
        // SAFETY (of each use): the words lie within the bucket, 8-aligned (the mapping is
        // page-aligned, buckets are 256 bytes, heads 16 and flows 48); the data plane accesses
        // them only with whole aligned words.
        let at = |offset: usize| unsafe {
            AtomicU64::from_ptr((bucket as *mut u8).add(offset) as *mut u64)
        };
        let head = |w: usize| offset_of!(CtBucket, heads) + w * size_of::<CtSlot>();
        let flow = |w: usize| offset_of!(CtBucket, flows) + w * size_of::<CtFlow>();
        for w in 0..CT_WAYS {
            let place = reply_word(b, w as u32);
            let st = at(head(w));
            let (seq, t) = split_seq_tag(st.load(Ordering::SeqCst));
            if seq != 0 {
                let held = t == tag
                    && (0..words.len()).all(|i| {
                        at(flow(w) + CT_KEY_OFFSET + 8 * i).load(Ordering::SeqCst) == words[i]
                    });
                if held && seq & 1 == 0 {
                    return Inserted::Present(place);
                }
                continue;
            }
            if st
                .compare_exchange(0, seq_tag(1, tag), Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            for (i, &k) in words.iter().enumerate() {
                at(flow(w) + CT_KEY_OFFSET + 8 * i).store(k, Ordering::SeqCst);
            }
            at(flow(w) + CT_DEST_OFFSET).store(pair, Ordering::SeqCst);
            at(head(w) + CT_SEEN_OFFSET).store(seen, Ordering::SeqCst);
            st.store(seq_tag(next_seq(0), tag), Ordering::SeqCst);
            return Inserted::Added(place);
        }
        Inserted::Full
    }
}

/// The connection table of `ebpf`.
pub fn table_map(ebpf: &Ebpf) -> Result<&MapData, ConntrackError> {
    let name = map_names::CONNTRACK;
    match ebpf.map(name) {
        Some(Map::Array(data)) => Ok(data),
        _ => Err(ConntrackError::Missing { name }),
    }
}

/// Calls `f` with a copy of every way of the table of `ebpf` (see [`Table::for_each_way`]).
pub fn for_each_way(ebpf: &Ebpf, f: impl FnMut(&CtEntry)) -> Result<(), ConntrackError> {
    Table::map(table_map(ebpf)?, false)?.for_each_way(f);
    Ok(())
}

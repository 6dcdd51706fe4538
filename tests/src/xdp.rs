//! Running the balancer on crafted frames with BPF_PROG_TEST_RUN, and looking into its
//! connection table.

use std::{collections::HashMap, net::IpAddr};

use aya::{
    maps::{Array, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
};
use lvs::dataplane::{Dataplane, plan::kernel_addr};
use lvs_common::{CtBucket, FlowKey, hash::ct_bucket, limits::map_names};

/// The loopback interface's index: BPF_PROG_TEST_RUN without a context runs the program as if
/// the frame arrived on loopback, so a destination behind ifindex 1 gets XDP_TX.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// The verdict and the frame as the program left it.
#[derive(Debug)]
pub struct Outcome {
    /// XDP verdict.
    pub verdict: u32,
    /// The frame after the program.
    pub frame: Vec<u8>,
}

/// Runs the balancer once on `frame`.
pub fn run(dp: &mut Dataplane, frame: &[u8]) -> Outcome {
    run_program(dp.balancer().expect("balancer program"), frame)
}

/// Runs `prog` once on `frame` (from any thread: the program is shared, not borrowed
/// mutably).
pub fn run_program(prog: &Xdp, frame: &[u8]) -> Outcome {
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    Outcome {
        verdict: r.return_value,
        frame: out,
    }
}

/// Pins the calling thread to one CPU, so per-CPU scheduler positions form one sequence.
pub fn pin_to_one_cpu() {
    let cpu = allowed_cpus().first().copied().unwrap_or(0);
    pin_to_cpu(cpu);
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|s| {
            (0..nix::sched::CpuSet::count())
                .filter(|&c| s.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).expect("cpu index");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// The key the balancer makes of a packet from `src:sport` to `dst:dport` over `proto`.
pub fn flow_key(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> FlowKey {
    FlowKey {
        src: kernel_addr(src),
        dst: kernel_addr(dst),
        sport_be: sport.to_be(),
        dport_be: dport.to_be(),
        proto,
        ..FlowKey::default()
    }
}

/// The connection table of a loaded data plane.
pub fn ct_map(dp: &mut Dataplane) -> Array<&mut MapData, CtBucket> {
    let map = dp
        .ebpf()
        .map_mut(map_names::CONNTRACK)
        .expect("connection table");
    Array::try_from(map).expect("connection table of buckets")
}

/// The tables' flags word (`LVS_TABLE_FLAGS`, [`lvs_common::service::table_flags`]) the
/// balancer reads, found through the balancer program (the agent holds the map itself).
pub fn table_flags(dp: &mut Dataplane) -> Array<MapData, u32> {
    let ids = dp
        .balancer()
        .expect("the balancer")
        .info()
        .expect("its info")
        .map_ids()
        .expect("its maps")
        .expect("map ids");
    for id in ids {
        let data = MapData::from_id(id).expect("a map");
        if data.info().expect("map info").name_as_str() == Some(map_names::TABLE_FLAGS) {
            return Array::try_from(aya::maps::Map::Array(data)).expect("an array");
        }
    }
    panic!("the balancer has no {} map", map_names::TABLE_FLAGS);
}

/// The connection table's hash seed.
pub fn ct_seed(dp: &mut Dataplane) -> u64 {
    let map = dp.ebpf().map_mut(map_names::CT_SEED).expect("seed map");
    let seeds: Array<&mut MapData, lvs_common::CtConfig> =
        Array::try_from(map).expect("seed array");
    seeds.get(&0, 0).expect("seed").seed
}

/// Whether the connection table holds a (stable, written) entry for `key`.
pub fn ct_holds(dp: &mut Dataplane, key: &FlowKey) -> bool {
    let bucket = bucket_of(key, ct_seed(dp));
    let b = ct_map(dp).get(&bucket, 0).expect("bucket");
    b.ways()
        .iter()
        .any(|e| !e.is_empty() && e.is_stable() && e.key == *key)
}

/// The bucket `key` lands in under `seed`, in a table of the object's declared size (what
/// [`Dataplane::load`] makes).
pub fn bucket_of(key: &FlowKey, seed: u64) -> u32 {
    ct_bucket(&key.words(), seed, lvs_common::limits::CT_BUCKETS - 1)
}

/// The first `buckets` buckets (under `seed`) to get `per_bucket` keys from `candidates`, each
/// with those keys in the order met. Panics if the candidates run out first.
pub fn keys_sharing_buckets(
    seed: u64,
    buckets: usize,
    per_bucket: usize,
    candidates: impl IntoIterator<Item = FlowKey>,
) -> Vec<Vec<FlowKey>> {
    let mut by_bucket: HashMap<u32, Vec<FlowKey>> = HashMap::new();
    let mut full = Vec::new();
    for key in candidates {
        let keys = by_bucket.entry(bucket_of(&key, seed)).or_default();
        if keys.len() == per_bucket {
            continue; // already taken
        }
        keys.push(key);
        if keys.len() == per_bucket {
            full.push(keys.clone());
            if full.len() == buckets {
                return full;
            }
        }
    }
    panic!("the candidates ran out before {buckets} buckets got {per_bucket} keys each");
}

/// Fills every way of the connection table `map` (mapped into this process) with a stable
/// entry of a made-up flow to `dest` (`generation`), last seen at `seen_word`, each with a
/// random-looking tag: a full table, as new flows meet it (they match no tag, and each takes
/// the place of a way), written in one pass over memory instead of hashing a flow into every
/// way. The flows' keys do not hash to their buckets: only new flows are sent into it.
pub fn fill_table_image(map: &MapData, dest: u32, generation: u32, seen_word: u64) {
    use std::os::fd::{AsFd as _, AsRawFd as _};

    use lvs_common::{CtEntry, limits::CT_WAYS};
    let buckets = map.info().expect("table info").max_entries() as usize;
    let len = buckets * size_of::<CtBucket>();
    // SAFETY: a shared writable mapping of a BPF_F_MMAPABLE array's values, of its size.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            map.fd().as_fd().as_raw_fd(),
            0,
        )
    };
    assert!(ptr != libc::MAP_FAILED, "mapping the table");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in 0..buckets {
        let mut tags = [0u32; CT_WAYS];
        let ways: [CtEntry; CT_WAYS] = std::array::from_fn(|w| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            tags[w] = x as u32;
            CtEntry {
                seq: 2,
                key: FlowKey {
                    src: lvs_common::Addr::from_v4_wire((b * CT_WAYS + w) as u32),
                    sport_be: 1024u16.to_be(),
                    dport_be: 80u16.to_be(),
                    proto: 6,
                    ..FlowKey::default()
                },
                dest,
                generation,
                last_seen_ns: seen_word,
            }
        });
        // SAFETY: bucket `b` is within the mapping; nothing runs the program meanwhile.
        unsafe {
            (ptr as *mut CtBucket)
                .add(b)
                .write(CtBucket::from_ways(&ways, &tags))
        };
    }
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(ptr, len) };
}

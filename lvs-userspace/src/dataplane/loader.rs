//! Loading the kernel object, attaching the balancer to an interface, and handing out its
//! maps. This file loads (fresh, or adopting pinned maps) and hands out the maps; attaching
//! and detaching are in `loader/attach.rs`, the connection table's seed and timeouts in
//! `loader/ct_config.rs`, the errors ([`LoadError`]) in `loader/error.rs`.

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, DevMapHash, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, ProgramArray,
    },
    programs::{Xdp, xdp::XdpLinkId},
};
use lvs_common::{
    OwnMacs,
    limits::{
        CONNTRACK_ENTRIES, CT_WAYS, PERSIST_ENTRIES, forward_progs, map_names, program_names,
    },
};

use super::{
    conns::{Counts, table_now_ns},
    conntrack::{self, Table},
    object::EBPF_OBJECT,
    resize::{RESIZED, Resize},
    stats::Stats,
    tables::Tables,
};
use crate::config::TableSizes;

mod attach;
mod ct_config;
mod error;
mod inside;
mod layout;

pub use attach::{AttachMode, interface_index};
use ct_config::seed_conntrack;
pub use error::LoadError;
use layout::check_layout;

/// The table sizes the object declares: what [`Dataplane::load`] and
/// [`Dataplane::load_pinned`] make (tests and benchmarks); the agent asks for the config's.
pub const OBJECT_SIZES: TableSizes = TableSizes {
    connections: CONNTRACK_ENTRIES,
    persistence: PERSIST_ENTRIES,
};

/// A loader that makes the flow tables of `sizes`.
fn sized_loader<'a>(sizes: TableSizes) -> EbpfLoader<'a> {
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(map_names::CONNTRACK, buckets(sizes))
        .map_max_entries(map_names::PERSIST, sizes.persistence);
    loader
}

/// The connection table's buckets for `sizes`.
fn buckets(sizes: TableSizes) -> u32 {
    sizes.connections / CT_WAYS as u32
}

/// The loaded data plane: programs, the tables the agent writes, and the counters it reads.
pub struct Dataplane {
    ebpf: Ebpf,
    /// The tables the agent writes.
    pub tables: Tables,
    tx_ports: DevMapHash<MapData>,
    own_macs: Array<MapData, OwnMacs>,
    /// The forwarding programs the balancer tail-calls. Held open: the kernel empties a
    /// program array when its last file descriptor closes.
    _forward_progs: ProgramArray<MapData>,
    attached: Option<(u32, XdpLinkId)>,
    /// The balancer on other interfaces (a NAT director's inside ones).
    inside: Vec<inside::InsideLink>,
    /// Where maps and the link are pinned, when they are.
    pins: Option<PathBuf>,
    /// Whether the tables were adopted from an earlier agent.
    adopted: bool,
    /// The pins this agent made (not adopted): what [`Dataplane::abandon`] removes.
    created: Vec<PathBuf>,
    /// Whether the attached link is this agent's own (not one adopted from a pin).
    own_link: bool,
    /// The flow tables' sizes.
    sizes: TableSizes,
    /// A resize of pinned flow tables waiting for the program swap.
    resize: Option<Resize>,
}

/// The file name of the pinned XDP link in the pin directory.
const LINK_PIN: &str = "link";

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoadError> {
    ebpf.take_map(name).ok_or(LoadError::MissingMap { name })
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, LoadError> {
    T::try_from(take(ebpf, name)?).map_err(|source| LoadError::Map { name, source })
}

impl Dataplane {
    /// Loads the object and the balancer program (the verifier runs here), without attaching,
    /// with maps of its own that live as long as it does.
    pub fn load() -> Result<Self, LoadError> {
        Self::load_sized(OBJECT_SIZES)
    }

    /// [`Dataplane::load`] with flow tables of `sizes`.
    pub fn load_sized(sizes: TableSizes) -> Result<Self, LoadError> {
        let ebpf = sized_loader(sizes)
            .load(EBPF_OBJECT)
            .map_err(|source| LoadError::Object { source })?;
        Self::from_ebpf(ebpf, None, sizes)
    }

    /// [`Dataplane::load_pinned`] with the flow tables the object declares.
    pub fn load_pinned(dir: &Path) -> Result<Self, LoadError> {
        Self::load_pinned_sized(dir, OBJECT_SIZES)
    }

    /// Loads with every map pinned in `dir` (on a bpffs), adopting the maps (and with
    /// [`Dataplane::attach`], the XDP link) an earlier agent pinned there: established flows,
    /// counters and forwarding survive a restart. Pinned maps of another layout are refused.
    /// Pinned flow tables of other sizes than `sizes` are resized ([`Resize`]): their live
    /// flows are moved into new tables, or the start is refused if they do not fit.
    pub fn load_pinned_sized(dir: &Path, sizes: TableSizes) -> Result<Self, LoadError> {
        std::fs::create_dir_all(dir).map_err(|source| LoadError::Pin {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let resize_from = check_layout(dir, sizes)?;
        let resized = resize_from.is_some();
        let made_anew = |n: &&str| resize_from.is_some() && RESIZED.contains(n);
        let created: Vec<PathBuf> = map_names::ALL
            .iter()
            .filter(|n| !made_anew(n))
            .map(|n| dir.join(n))
            .filter(|p| !p.exists())
            .collect();
        let paths: Vec<(&str, PathBuf)> = map_names::ALL
            .iter()
            .filter(|n| !made_anew(n))
            .map(|&n| (n, dir.join(n)))
            .collect();
        let mut loader = sized_loader(sizes);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let remove_created = |e| {
            for p in &created {
                let _ = std::fs::remove_file(p);
            }
            e
        };
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|source| remove_created(LoadError::Object { source }))?;
        let resize = match resize_from {
            Some(from) => {
                Some(Resize::prepare(dir, &mut ebpf, from, sizes).map_err(remove_created)?)
            }
            None => None,
        };
        let mut dp =
            Self::from_ebpf(ebpf, Some(dir.to_path_buf()), sizes).map_err(remove_created)?;
        dp.created = created;
        dp.resize = resize;
        let services = match dp.tables.adopt() {
            Ok(n) => n,
            Err(source) => {
                dp.abandon();
                return Err(LoadError::Adopt { source });
            }
        };
        dp.adopted = services > 0 || dir.join(LINK_PIN).exists();
        // No old program runs without a link: the resize ends now.
        if !dir.join(LINK_PIN).exists()
            && let Err(e) = dp.finish_resize()
        {
            dp.abandon();
            return Err(e);
        }
        // A table kept from a build that kept NATed flows' replies in a map of their own: its
        // NATed flows get their reply ways once (a resize made them already), and the old
        // map's pin goes.
        let retired = dir.join(map_names::RETIRED[0]);
        if retired.exists() {
            if !resized
                && !dp.created.contains(&dir.join(map_names::CONNTRACK))
                && let Err(e) = dp.insert_reply_ways()
            {
                dp.abandon();
                return Err(e);
            }
            let _ = std::fs::remove_file(&retired);
        }
        // A table kept from a build that kept no counts: count it once.
        let new_counts = dir.join(map_names::DEST_CONNS);
        let new_table = dir.join(map_names::CONNTRACK);
        if dp.created.contains(&new_counts) && !dp.created.contains(&new_table) {
            let timeouts = dp.timeouts()?;
            let slots = dp.tables.slots().to_vec();
            dp.tables
                .counts_mut()
                .rebuild(&slots, table_now_ns(), &timeouts);
        }
        Ok(dp)
    }

    /// Writes a reply way for each live NATed flow of the connection table (one that has it
    /// keeps it): for a table kept from a build without reply ways.
    fn insert_reply_ways(&mut self) -> Result<(), LoadError> {
        let config = self.ct_config()?;
        let ct = |source| LoadError::Conntrack { source };
        let table = Table::map(conntrack::table_map(&self.ebpf).map_err(ct)?, true).map_err(ct)?;
        let (now, timeouts, seed) = (table_now_ns(), config.timeouts, config.seed);
        let mut flows = Vec::new();
        table.for_each_way_at(|place, e| {
            if e.is_live(now, &timeouts) {
                flows.push((*e, place));
            }
        });
        let slots = self.tables.slots();
        let unfit = table.insert_replies(&flows, |id| slots.get(id as usize).copied(), now, seed);
        tracing::info!(
            flows = flows.len(),
            unfit,
            "reply ways written for the NATed flows of a table kept from an earlier lvs"
        );
        Ok(())
    }

    /// Ends a resize of the pinned flow tables, if one is under way.
    fn finish_resize(&mut self) -> Result<(), LoadError> {
        match self.resize.take() {
            Some(r) => r.finish(&mut self.ebpf),
            None => Ok(()),
        }
    }

    /// The flow tables' sizes.
    pub fn sizes(&self) -> TableSizes {
        self.sizes
    }

    fn from_ebpf(
        mut ebpf: Ebpf,
        pins: Option<PathBuf>,
        sizes: TableSizes,
    ) -> Result<Self, LoadError> {
        seed_conntrack(&mut ebpf, sizes)?;
        load_program(&mut ebpf, program_names::BALANCER)?;
        let forward_progs = install_forwarding_programs(&mut ebpf)?;
        let cpus =
            aya::util::nr_cpus().map_err(|(path, source)| LoadError::Cpus { path, source })?;
        let stats = Stats::new(
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::SERVICE_STATS)?,
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::DEST_STATS)?,
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::DROPS)?,
            cpus,
        );
        let counts = {
            let name = map_names::DEST_CONNS;
            let Map::Array(map) = take(&mut ebpf, name)? else {
                return Err(LoadError::MissingMap { name });
            };
            let name = map_names::CONNTRACK;
            let Some(Map::Array(table)) = ebpf.map(name) else {
                return Err(LoadError::MissingMap { name });
            };
            Counts::new(map, table.fd().as_fd(), buckets(sizes) as usize)
                .map_err(|source| LoadError::Counts { source })?
        };
        let tables = Tables::new(
            typed::<BpfHashMap<_, _, _>>(&mut ebpf, map_names::SERVICES)?,
            typed::<Array<_, _>>(&mut ebpf, map_names::DESTS)?,
            typed::<Array<_, _>>(&mut ebpf, map_names::RINGS)?,
            typed::<BpfHashMap<_, _, _>>(&mut ebpf, map_names::VIP_ADDRS)?,
            typed::<Array<_, _>>(&mut ebpf, map_names::TABLE_FLAGS)?,
            stats,
            counts,
        );
        Ok(Dataplane {
            tx_ports: typed(&mut ebpf, map_names::TX_PORTS)?,
            own_macs: typed(&mut ebpf, map_names::OWN_MACS)?,
            _forward_progs: forward_progs,
            ebpf,
            tables,
            attached: None,
            inside: Vec::new(),
            pins,
            adopted: false,
            created: Vec::new(),
            own_link: false,
            sizes,
            resize: None,
        })
    }

    /// Whether this data plane took over tables (and a link) an earlier agent pinned.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Whether its maps and link are pinned (they outlive this process).
    pub fn pinned(&self) -> bool {
        self.pins.is_some()
    }

    /// The loaded object, for tests and the benchmark (to run programs with
    /// BPF_PROG_TEST_RUN and read other maps).
    pub fn ebpf(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The balancer program.
    pub fn balancer(&mut self) -> Result<&mut Xdp, LoadError> {
        program(&mut self.ebpf, program_names::BALANCER)
    }

    /// Sets the Ethernet destinations the balancer accepts: the attached interface's own MAC
    /// first, then any the config adds (a VRRP virtual MAC). A frame to another destination
    /// is XDP_PASS, untouched; until this is called, every frame is. Zero and group MACs are
    /// left out, and so is any past [`lvs_common::mac::MAX_OWN_MACS`].
    pub fn set_own_macs(&mut self, macs: &[[u8; 6]]) -> Result<(), LoadError> {
        self.own_macs
            .set(0, OwnMacs::new(macs), 0)
            .map_err(|source| LoadError::Map {
                name: map_names::OWN_MACS,
                source,
            })
    }

    /// Makes `ifindex` reachable by XDP_REDIRECT (for reals behind another interface).
    pub fn add_tx_port(&mut self, ifindex: u32) -> Result<(), LoadError> {
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| LoadError::DevMap {
                name: map_names::TX_PORTS,
                source,
            })
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoadError> {
    ebpf.program_mut(name)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or(LoadError::MissingProgram { name })
}

/// Loads the programs the balancer tail-calls (the new-flow stages, the tunnel, NAT both
/// ways) and puts them in its program array.
fn install_forwarding_programs(ebpf: &mut Ebpf) -> Result<ProgramArray<MapData>, LoadError> {
    let mut fds = Vec::new();
    for (index, name) in [
        (forward_progs::NEW_FLOW, program_names::NEW_FLOW),
        (forward_progs::TUNNEL, program_names::TUNNEL),
        (forward_progs::NAT, program_names::NAT),
        (forward_progs::NAT_REPLY, program_names::NAT_REPLY),
        (forward_progs::NAT_ICMP, program_names::NAT_ICMP),
    ] {
        let fd = load_program(ebpf, name)?
            .fd()
            .map_err(|source| LoadError::Program {
                action: "taking the fd of",
                name,
                source,
            })?
            .try_clone()
            .map_err(|e| LoadError::Program {
                action: "duplicating the fd of",
                name,
                source: aya::programs::ProgramError::IOError(e),
            })?;
        fds.push((index, fd));
    }
    let mut progs: ProgramArray<MapData> = typed(ebpf, map_names::FORWARD_PROGS)?;
    for (index, fd) in &fds {
        progs.set(*index, fd, 0).map_err(|source| LoadError::Map {
            name: map_names::FORWARD_PROGS,
            source,
        })?;
    }
    Ok(progs)
}

/// Loads (verifies) the XDP program `name` of `ebpf`.
pub fn load_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoadError> {
    let prog = program(ebpf, name)?;
    prog.load().map_err(|source| LoadError::Program {
        action: "loading",
        name,
        source,
    })?;
    Ok(prog)
}

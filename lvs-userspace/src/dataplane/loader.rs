//! Loading the kernel object, attaching the balancer to an interface, and handing out its
//! maps.

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{
        Array, DevMapHash, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, ProgramArray,
    },
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use lvs_common::{
    CtConfig, CtTimeouts, OwnMacs,
    conntrack::CT_LAYOUT,
    limits::{
        CONNTRACK_ENTRIES, CT_WAYS, PERSIST_ENTRIES, forward_progs, map_names, program_names,
    },
};

use super::{
    conns::{Counts, CountsError, table_now_ns},
    object::EBPF_OBJECT,
    resize::{RESIZED, Resize},
    stats::Stats,
    tables::Tables,
};
use crate::config::TableSizes;

mod inside;
mod layout;

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

/// Errors loading or attaching the data plane.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object could not be loaded (maps created, relocations applied).
    #[error("loading the BPF object: {source}")]
    Object {
        /// The cause.
        #[source]
        source: EbpfError,
    },
    /// A program is missing from the object or has another type.
    #[error("program {name} is missing from the BPF object or is not XDP")]
    MissingProgram {
        /// The program's name.
        name: &'static str,
    },
    /// The kernel's verifier rejected a program, or attaching failed.
    #[error("{action} program {name}: {source}")]
    Program {
        /// What was being done.
        action: &'static str,
        /// The program's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: ProgramError,
    },
    /// A map is missing from the object.
    #[error("map {name} is missing from the BPF object")]
    MissingMap {
        /// The map's name.
        name: &'static str,
    },
    /// A map has an unexpected type or size.
    #[error("map {name}: {source}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
    /// The number of CPUs could not be read (for per-CPU counters).
    #[error("reading {path}: {source}")]
    Cpus {
        /// The file read.
        path: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A devmap write failed.
    #[error("map {name}: {source}")]
    DevMap {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
    /// A pinned map was made by an lvs with another map layout.
    #[error(
        "the pinned map {path} has another layout ({pinned}) than this lvs needs ({wanted}); \
         it belongs to another lvs version: stop that data plane (or remove {dir}) first, or \
         use another instance name"
    )]
    Layout {
        /// The pinned map.
        path: PathBuf,
        /// Its layout.
        pinned: String,
        /// The layout this binary's object declares.
        wanted: String,
        /// The pin directory.
        dir: PathBuf,
    },
    /// The object could not be parsed (to read its map layout).
    #[error("parsing the BPF object: {source}")]
    Parse {
        /// The cause.
        #[source]
        source: aya_obj::ParseError,
    },
    /// A pin could not be read, written or removed.
    #[error("{action} {path}: {source}")]
    Pin {
        /// What was being done.
        action: &'static str,
        /// The pin.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection counts could not be mapped.
    #[error("mapping the connection counts")]
    Counts {
        /// Why.
        #[source]
        source: CountsError,
    },
    /// The pinned link could not be adopted or pinned.
    #[error("{action} the XDP link pinned at {path}: {detail}")]
    Link {
        /// What was being done.
        action: &'static str,
        /// The pin.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The tables left by an earlier agent could not be read.
    #[error("adopting the pinned tables: {source}")]
    Adopt {
        /// The cause.
        #[source]
        source: super::tables::TablesError,
    },
    /// The interface does not exist.
    #[error("interface {name} does not exist (interfaces here: {present})")]
    NoInterface {
        /// The interface's name.
        name: String,
        /// The interfaces that do exist in this network namespace.
        present: String,
    },
    /// Another XDP program is attached to the interface.
    #[error(
        "attaching to {interface}: XDP program {program} (id {prog_id}, {mode} mode) is \
         already attached there by something else; detach it first (`ip link set dev \
         {interface} xdp off`, or stop what attached it)"
    )]
    Occupied {
        /// The interface.
        interface: String,
        /// The attached program's name (`?` when it cannot be read).
        program: String,
        /// Its id.
        prog_id: u32,
        /// How it is attached.
        mode: &'static str,
    },
    /// A restart asked for a connection table too small for the live flows of the pinned one.
    #[error(
        "the pinned connection table in {dir} ({from} flows) holds {live} live flows, and {unfit} \
         of them do not fit a table of {to} flows (connection_table_size): their buckets would \
         be full. Nothing was changed; ask for a larger connection_table_size, or stop the \
         running data plane (cleanstop) to start with an empty table"
    )]
    Resize {
        /// The pin directory.
        dir: PathBuf,
        /// The pinned table's size.
        from: u32,
        /// The size asked for.
        to: u32,
        /// Live flows in the pinned table.
        live: u64,
        /// How many of them would not fit.
        unfit: u64,
    },
    /// The connection table could not be read or written.
    #[error("{source}")]
    Conntrack {
        /// The cause.
        #[source]
        source: super::conntrack::ConntrackError,
    },
    /// No random seed for the connection table could be drawn.
    #[error("drawing a random seed for the connection table: {source}")]
    Random {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the balancer is attached (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AttachMode {
    /// Native if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) XDP only.
    Native,
    /// Generic (skb) XDP.
    Generic,
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

/// The index of interface `name`, or [`LoadError::NoInterface`] listing those that exist.
pub fn interface_index(name: &str) -> Result<u32, LoadError> {
    nix::net::if_::if_nametoindex(name).map_err(|_| LoadError::NoInterface {
        name: name.to_string(),
        present: nix::net::if_::if_nameindex()
            .map(|l| {
                l.iter()
                    .map(|i| i.name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "?".into()),
    })
}

/// What is attached to `ifindex` (called `interface`) when attaching there failed:
/// [`LoadError::Occupied`] naming it, else `err`.
fn occupied_or(interface: &str, ifindex: u32, err: LoadError) -> LoadError {
    match crate::neighbour::xdp_of(ifindex) {
        Ok(Some(a)) => LoadError::Occupied {
            interface: interface.to_string(),
            program: aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .find(|p| p.id() == a.prog_id)
                .and_then(|p| p.name_as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into()),
            prog_id: a.prog_id,
            mode: a.mode,
        },
        _ => err,
    }
}

/// The file name of the pinned XDP link in the pin directory.
const LINK_PIN: &str = "link";

/// Gives the connection table a random non-zero hash seed and IPVS's default timeouts if it
/// has no seed (a new map), before any program runs on it. A seed already there (pinned maps
/// adopted from an earlier agent) is kept, and so are its timeouts: the flows in the table are
/// where that seed put them, and the agent sets the config's timeouts itself
/// ([`Dataplane::set_timeouts`]).
fn seed_conntrack(ebpf: &mut Ebpf, sizes: TableSizes) -> Result<(), LoadError> {
    let name = map_names::CT_SEED;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap { name })?;
    let mut configs: Array<&mut MapData, CtConfig> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    let config = configs
        .get(&0, 0)
        .map_err(|source| LoadError::Map { name, source })?;
    let bucket_mask = buckets(sizes) - 1;
    if config.seed != 0 && config.bucket_mask == bucket_mask {
        return Ok(());
    }
    let config = if config.seed != 0 {
        CtConfig {
            bucket_mask,
            ..config
        }
    } else {
        CtConfig {
            seed: random_seed()?,
            timeouts: CtTimeouts::DEFAULT,
            bucket_mask,
            layout: CT_LAYOUT,
        }
    };
    configs
        .set(0, config, 0)
        .map_err(|source| LoadError::Map { name, source })
}

/// A random non-zero `u64` from the kernel's random pool.
fn random_seed() -> Result<u64, LoadError> {
    loop {
        let mut bytes = [0u8; 8];
        // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into the buffer.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LoadError::Random { source });
        }
        let seed = u64::from_ne_bytes(bytes);
        if n as usize == bytes.len() && seed != 0 {
            return Ok(seed);
        }
    }
}

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

    /// Sets the connection table's idle timeouts (the seed is kept). Flows already in the
    /// table are judged by the new timeouts from their next lookup on, as IPVS's are not (its
    /// timer keeps the timeout it was armed with until the next packet).
    pub fn set_timeouts(&mut self, timeouts: CtTimeouts) -> Result<(), LoadError> {
        let name = map_names::CT_SEED;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::MissingMap { name })?;
        let mut configs: Array<&mut MapData, CtConfig> =
            Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        let mut config = configs
            .get(&0, 0)
            .map_err(|source| LoadError::Map { name, source })?;
        if config.timeouts == timeouts {
            return Ok(());
        }
        config.timeouts = timeouts;
        configs
            .set(0, config, 0)
            .map_err(|source| LoadError::Map { name, source })
    }

    /// The connection table's idle timeouts.
    pub fn timeouts(&mut self) -> Result<CtTimeouts, LoadError> {
        let name = map_names::CT_SEED;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::MissingMap { name })?;
        let configs: Array<&mut MapData, CtConfig> =
            Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        configs
            .get(&0, 0)
            .map(|c| c.timeouts)
            .map_err(|source| LoadError::Map { name, source })
    }

    /// The balancer program.
    pub fn balancer(&mut self) -> Result<&mut Xdp, LoadError> {
        program(&mut self.ebpf, program_names::BALANCER)
    }

    /// Attaches the balancer to `interface`. Returns the interface index. With pins, a link an
    /// earlier agent pinned is taken over by swapping this program in atomically (no packet
    /// meets no program); otherwise the new link is pinned.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<u32, LoadError> {
        let (ifindex, link, own) = self.link_to(interface, mode, LINK_PIN)?;
        self.attached = Some((ifindex, link));
        if own {
            self.own_link = true;
        } else {
            // The old program no longer runs: what it added to the old tables is moved.
            self.finish_resize()?;
        }
        Ok(ifindex)
    }

    /// Attaches the balancer to `interface`, its link pinned as `pin_file` in the pin
    /// directory (taken over if an earlier agent pinned it). Returns the interface index, the
    /// link, and whether the link is this agent's own (not adopted).
    fn link_to(
        &mut self,
        interface: &str,
        mode: AttachMode,
        pin_file: &str,
    ) -> Result<(u32, XdpLinkId, bool), LoadError> {
        let ifindex = interface_index(interface)?;
        let name = program_names::BALANCER;
        let link_pin = self.pins.as_ref().map(|d| d.join(pin_file));
        if let Some(pin) = link_pin.as_ref().filter(|p| p.exists()) {
            let pinned = PinnedLink::from_pin(pin).map_err(|e| link_error("opening", pin, e))?;
            let id = self.hold(pin, pinned, "swapping in")?;
            return Ok((ifindex, id, false));
        }
        let prog = self.balancer()?;
        let attach = |prog: &mut Xdp, mode| prog.attach_to_if_index(ifindex, mode);
        let link = match mode {
            AttachMode::Native => attach(prog, XdpMode::Driver),
            AttachMode::Generic => attach(prog, XdpMode::Skb),
            AttachMode::Auto => {
                attach(prog, XdpMode::Driver).or_else(|_| attach(prog, XdpMode::Skb))
            }
        }
        .map_err(|source| {
            let e = LoadError::Program {
                action: "attaching",
                name,
                source,
            };
            occupied_or(interface, ifindex, e)
        })?;
        let Some(pin) = link_pin else {
            return Ok((ifindex, link, true));
        };
        let owned = self
            .balancer()?
            .take_link(link)
            .map_err(|source| LoadError::Program {
                action: "taking the link of",
                name,
                source,
            })?;
        let pinned = FdLink::try_from(owned)
            .map_err(|e| link_error("pinning", &pin, e))?
            .pin(&pin)
            .map_err(|e| link_error("pinning", &pin, e))?;
        self.created.push(pin.clone());
        let id = self.hold(&pin, pinned, "keeping")?;
        Ok((ifindex, id, true))
    }

    /// Makes the pinned link this program's (replacing the program it runs, atomically).
    fn hold(
        &mut self,
        pin: &Path,
        pinned: PinnedLink,
        action: &'static str,
    ) -> Result<XdpLinkId, LoadError> {
        let link =
            XdpLink::try_from(FdLink::from(pinned)).map_err(|e| link_error(action, pin, e))?;
        self.balancer()?
            .attach_to_link(link)
            .map_err(|source| LoadError::Program {
                action,
                name: program_names::BALANCER,
                source,
            })
    }

    /// Ends this agent's hold on the data plane. `detach` (ldirectord's `cleanstop`): the
    /// balancer is detached and the pins removed. Otherwise the pinned link and maps keep
    /// forwarding after the process exits, for the next agent to adopt.
    pub fn release(mut self, detach: bool) -> Result<(), LoadError> {
        if !detach {
            return Ok(());
        }
        if let Some(dir) = self.pins.clone() {
            let names = map_names::ALL.iter().copied().chain([LINK_PIN]);
            for path in names.map(|n| dir.join(n)).chain(inside::inside_pins(&dir)) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(LoadError::Pin {
                            action: "removing",
                            path,
                            source,
                        });
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
        self.detach()
    }

    /// Undoes a start that failed: what this agent attached and pinned is detached and
    /// removed, with the pin directory when that leaves it empty. What it adopted from an
    /// earlier agent (pins, a link that forwards) is left as it was.
    pub fn abandon(mut self) {
        for p in std::mem::take(&mut self.created) {
            let _ = std::fs::remove_file(p);
        }
        if let Some(dir) = &self.pins {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = self.detach_inside(true);
        if self.own_link {
            let _ = self.detach();
        }
    }

    /// Detaches the balancer, if attached (from every interface it runs on).
    pub fn detach(&mut self) -> Result<(), LoadError> {
        self.detach_inside(false)?;
        if let Some((_, link)) = self.attached.take() {
            self.balancer()?
                .detach(link)
                .map_err(|source| LoadError::Program {
                    action: "detaching",
                    name: program_names::BALANCER,
                    source,
                })?;
        }
        Ok(())
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

fn link_error(action: &'static str, pin: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Link {
        action,
        path: pin.to_path_buf(),
        detail: e.to_string(),
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

//! Loading the kernel object, attaching the balancer to an interface, and handing out its
//! maps.

use aya::{
    Ebpf, EbpfError,
    maps::{Array, DevMapHash, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use lvs_common::limits::{map_names, program_names};

use super::{object::EBPF_OBJECT, stats::Stats, tables::Tables};

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
    /// The interface does not exist.
    #[error("interface {name} does not exist")]
    NoInterface {
        /// The interface's name.
        name: String,
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
    attached: Option<(u32, XdpLinkId)>,
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
    /// Loads the object and the balancer program (the verifier runs here), without attaching.
    pub fn load() -> Result<Self, LoadError> {
        let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(|source| LoadError::Object { source })?;
        load_program(&mut ebpf, program_names::BALANCER)?;
        let cpus =
            aya::util::nr_cpus().map_err(|(path, source)| LoadError::Cpus { path, source })?;
        let stats = Stats::new(
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::SERVICE_STATS)?,
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::DEST_STATS)?,
            typed::<PerCpuArray<_, _>>(&mut ebpf, map_names::DROPS)?,
            cpus,
        );
        let tables = Tables::new(
            typed::<BpfHashMap<_, _, _>>(&mut ebpf, map_names::SERVICES)?,
            typed::<Array<_, _>>(&mut ebpf, map_names::DESTS)?,
            typed::<Array<_, _>>(&mut ebpf, map_names::RINGS)?,
            stats,
        );
        Ok(Dataplane {
            tx_ports: typed(&mut ebpf, map_names::TX_PORTS)?,
            ebpf,
            tables,
            attached: None,
        })
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

    /// Attaches the balancer to `interface`. Returns the interface index.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<u32, LoadError> {
        let ifindex =
            nix::net::if_::if_nametoindex(interface).map_err(|_| LoadError::NoInterface {
                name: interface.to_string(),
            })?;
        let name = program_names::BALANCER;
        let prog = self.balancer()?;
        let attach = |prog: &mut Xdp, mode| prog.attach_to_if_index(ifindex, mode);
        let link = match mode {
            AttachMode::Native => attach(prog, XdpMode::Driver),
            AttachMode::Generic => attach(prog, XdpMode::Skb),
            AttachMode::Auto => {
                attach(prog, XdpMode::Driver).or_else(|_| attach(prog, XdpMode::Skb))
            }
        }
        .map_err(|source| LoadError::Program {
            action: "attaching",
            name,
            source,
        })?;
        self.attached = Some((ifindex, link));
        Ok(ifindex)
    }

    /// Detaches the balancer, if attached.
    pub fn detach(&mut self) -> Result<(), LoadError> {
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

    /// The interface the balancer is attached to.
    pub fn ifindex(&self) -> Option<u32> {
        self.attached.as_ref().map(|(i, _)| *i)
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

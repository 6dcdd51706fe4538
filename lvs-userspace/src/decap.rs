//! `lvs decap`: the decapsulator for real servers behind a director that tunnels (`ipip`),
//! for hosts without the kernel's `ipip`/`ip6tnl` modules (as Katran ships one). It attaches
//! the XDP program `lvs_decap` to the real's interface: IP-in-IP packets whose inner
//! destination is one of the given VIPs lose their outer header and go up the stack as the
//! client's packets to the VIP (which the real holds on its loopback, as for direct routing);
//! everything else passes untouched. It runs until SIGINT or SIGTERM, then detaches.

use std::net::IpAddr;

use aya::{
    Ebpf, EbpfError,
    maps::{HashMap as BpfHashMap, MapData, MapError},
    programs::{ProgramError, Xdp, XdpMode},
};
use lvs_common::{Addr, limits::program_names};

use crate::dataplane::{
    loader::{AttachMode, LoadError, interface_index},
    object::EBPF_OBJECT,
    plan::kernel_addr,
};

/// Errors of `lvs decap`.
#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    /// The BPF object could not be loaded.
    #[error("loading the BPF object: {source}")]
    Object {
        /// The cause.
        #[source]
        source: EbpfError,
    },
    /// The interface does not exist.
    #[error(transparent)]
    Interface(#[from] Box<LoadError>),
    /// The program could not be loaded or attached.
    #[error("{action} the decapsulator ({name}) on {interface}: {source}")]
    Program {
        /// What failed.
        action: &'static str,
        /// The program.
        name: &'static str,
        /// The interface.
        interface: String,
        /// The cause.
        #[source]
        source: Box<ProgramError>,
    },
    /// The VIPs could not be written.
    #[error("writing the VIP {vip} into {map}: {source}")]
    Map {
        /// The VIP.
        vip: IpAddr,
        /// The map.
        map: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
    /// No VIP given.
    #[error("no --vip given: the decapsulator strips only packets to a VIP")]
    NoVip,
    /// Waiting for a signal failed.
    #[error("waiting for SIGINT/SIGTERM: {source}")]
    Signal {
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// The decapsulator, attached while this value lives.
pub struct Decap {
    ebpf: Ebpf,
}

impl Decap {
    /// Loads the decapsulator, writes `vips` and attaches it to `interface`.
    pub fn attach(interface: &str, vips: &[IpAddr], mode: AttachMode) -> Result<Decap, DecapError> {
        let ifindex = interface_index(interface).map_err(Box::new)?;
        let mut decap = Decap::load(interface, vips)?;
        let name = program_names::DECAP;
        let err = |action: &'static str| {
            let interface = interface.to_string();
            move |source| DecapError::Program {
                action,
                name,
                interface,
                source: Box::new(source),
            }
        };
        let prog = decap.program();
        match mode {
            AttachMode::Native => prog.attach_to_if_index(ifindex, XdpMode::Driver),
            AttachMode::Generic => prog.attach_to_if_index(ifindex, XdpMode::Skb),
            AttachMode::Auto => prog
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .or_else(|_| prog.attach_to_if_index(ifindex, XdpMode::Skb)),
        }
        .map_err(err("attaching"))?;
        Ok(decap)
    }

    /// The decapsulator program.
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(program_names::DECAP)
            .and_then(|p| p.try_into().ok())
            .expect("the object holds the decapsulator")
    }

    /// Loads (verifies) the decapsulator and writes `vips`, without attaching it (`interface`
    /// only names it in errors).
    pub fn load(interface: &str, vips: &[IpAddr]) -> Result<Decap, DecapError> {
        if vips.is_empty() {
            return Err(DecapError::NoVip);
        }
        let mut ebpf = Ebpf::load(EBPF_OBJECT).map_err(|source| DecapError::Object { source })?;
        let name = program_names::DECAP;
        let err = |action: &'static str| {
            let interface = interface.to_string();
            move |source| DecapError::Program {
                action,
                name,
                interface,
                source: Box::new(source),
            }
        };
        {
            let map = ebpf
                .map_mut(program_names::DECAP_VIPS)
                .expect("the object holds the decapsulator's map");
            let mut table: BpfHashMap<&mut MapData, Addr, u32> = BpfHashMap::try_from(map)
                .map_err(|source| DecapError::Map {
                    vip: vips[0],
                    map: program_names::DECAP_VIPS,
                    source,
                })?;
            for &vip in vips {
                table
                    .insert(kernel_addr(vip), 1, 0)
                    .map_err(|source| DecapError::Map {
                        vip,
                        map: program_names::DECAP_VIPS,
                        source,
                    })?;
            }
        }
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .expect("the object holds the decapsulator");
        prog.load().map_err(err("loading"))?;
        Ok(Decap { ebpf })
    }

    /// The BPF object (programs and maps).
    pub fn ebpf(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// `lvs decap`: attaches, then waits for SIGINT or SIGTERM; detaches on return.
pub fn run(interface: &str, vips: &[IpAddr], mode: AttachMode) -> Result<(), DecapError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|source| DecapError::Signal { source })?;
    let _decap = Decap::attach(interface, vips, mode)?;
    eprintln!(
        "lvs decap: stripping IP-in-IP to {} on {interface}; SIGINT or SIGTERM detaches",
        vips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    set.wait().map_err(|source| DecapError::Signal { source })?;
    Ok(())
}

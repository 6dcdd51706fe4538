//! Attaching the balancer to an interface (or taking over the link an earlier agent pinned),
//! and letting go of it: detaching, keeping it for the next agent, or undoing a failed start.

use std::path::Path;

use aya::programs::{
    Xdp, XdpMode,
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpLinkId},
};
use lvs_common::limits::{map_names, program_names};

use super::{Dataplane, LINK_PIN, LoadError, inside};

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

impl Dataplane {
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
    pub(super) fn link_to(
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
            let names = map_names::ALL
                .iter()
                .chain(&map_names::RETIRED)
                .copied()
                .chain([LINK_PIN]);
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
}

fn link_error(action: &'static str, pin: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Link {
        action,
        path: pin.to_path_buf(),
        detail: e.to_string(),
    }
}

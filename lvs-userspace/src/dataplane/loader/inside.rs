//! The balancer on more interfaces than the one holding the VIPs: a NAT director with two
//! (or more) interfaces, the clients on one and the reals on another, gets the NATed flows'
//! replies on the reals' side, so the balancer must run there too (it translates the replies
//! and the ICMP errors from the inside, and passes anything else). The agent names these
//! interfaces (those of the routes to its NATed reals, [`crate::agent`]); each link is
//! pinned as `link-IFNAME` beside the main one (`link`) and taken over the same way by the
//! next agent.

use std::path::{Path, PathBuf};

use aya::programs::xdp::XdpLinkId;
use lvs_common::limits::program_names;

use super::{AttachMode, Dataplane, LoadError};

/// The prefix of the pinned links of the other interfaces (`link-IFNAME`).
const INSIDE_PIN_PREFIX: &str = "link-";

/// The balancer attached to another interface.
pub(in crate::dataplane) struct InsideLink {
    /// The interface.
    ifindex: u32,
    /// The link.
    link: XdpLinkId,
    /// Whether this agent made it (not adopted from a pin).
    own: bool,
}

/// The pinned links of other interfaces in the pin directory `dir`.
pub(super) fn inside_pins(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(INSIDE_PIN_PREFIX))
        })
        .map(|e| e.path())
        .collect()
}

impl Dataplane {
    /// Attaches the balancer to `interface` too (besides the one [`Dataplane::attach`] took),
    /// unless it already runs there. Returns the interface index. With pins, the link is
    /// pinned as `link-IFNAME`, or taken over from an earlier agent.
    pub fn attach_inside(&mut self, interface: &str, mode: AttachMode) -> Result<u32, LoadError> {
        let ifindex = super::interface_index(interface)?;
        if self.attached.as_ref().is_some_and(|(i, _)| *i == ifindex)
            || self.inside.iter().any(|l| l.ifindex == ifindex)
        {
            return Ok(ifindex);
        }
        let pin_file = format!("{INSIDE_PIN_PREFIX}{interface}");
        let (ifindex, link, own) = self.link_to(interface, mode, &pin_file)?;
        self.inside.push(InsideLink { ifindex, link, own });
        Ok(ifindex)
    }

    /// The other interfaces the balancer runs on ([`Dataplane::attach_inside`]).
    pub fn inside_interfaces(&self) -> Vec<u32> {
        self.inside.iter().map(|l| l.ifindex).collect()
    }

    /// Detaches the balancer from the other interfaces (only from those this agent attached
    /// it to, if `only_own`).
    pub(super) fn detach_inside(&mut self, only_own: bool) -> Result<(), LoadError> {
        for l in std::mem::take(&mut self.inside) {
            if only_own && !l.own {
                continue;
            }
            self.balancer()?
                .detach(l.link)
                .map_err(|source| LoadError::Program {
                    action: "detaching",
                    name: program_names::BALANCER,
                    source,
                })?;
        }
        Ok(())
    }
}

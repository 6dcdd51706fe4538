//! A virtual service's scheduler ([`Scheduler`]) by ipvsadm's names, and the `mh` flags.

/// Scheduler of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// Weighted round-robin, the cycle of the kernel's ip_vs_wrr.c.
    Wrr,
    /// Round-robin over reals with weight above 0.
    Rr,
    /// Source-address hashing, weighted.
    Sh,
    /// Least connections (`lc`): least `active*256 + inactive`.
    Lc,
    /// Weighted least connections (`wlc`), ipvsadm's and keepalived's default.
    Wlc,
    /// Shortest expected delay (`sed`): least `(active + 1) / weight`.
    Sed,
    /// Never queue (`nq`): a real without active connections, else as `sed`.
    Nq,
    /// Weighted failover (`fo`): the highest weight.
    Fo,
    /// Weighted overflow (`ovf`): the highest weight whose active count is not above it.
    Ovf,
    /// Destination hashing (`dh`): by the packet's destination address.
    Dh,
    /// Maglev hashing (IPVS's `mh`), with its flags.
    Mh(MhFlags),
}

/// Flags of the `mh` scheduler, as IPVS names them (`ipvsadm -b`, keepalived, `schedflags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MhFlags {
    /// `mh-port`: hash the client's source port as well as its address.
    pub port: bool,
    /// `mh-fallback`: a flow whose real takes no new connections tries the next slots of its
    /// sequence instead of being dropped.
    pub fallback: bool,
}

impl Scheduler {
    /// Every scheduler lvs implements, by ipvsadm's name (`mh` without flags).
    pub const ALL: [(&'static str, Scheduler); 11] = [
        ("wrr", Scheduler::Wrr),
        ("rr", Scheduler::Rr),
        ("sh", Scheduler::Sh),
        ("lc", Scheduler::Lc),
        ("wlc", Scheduler::Wlc),
        ("sed", Scheduler::Sed),
        ("nq", Scheduler::Nq),
        ("fo", Scheduler::Fo),
        ("ovf", Scheduler::Ovf),
        ("dh", Scheduler::Dh),
        (
            "mh",
            Scheduler::Mh(MhFlags {
                port: false,
                fallback: false,
            }),
        ),
    ];

    /// The scheduler ipvsadm calls `name` (`mh` without flags).
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
    }

    /// ipvsadm's name.
    pub fn name(self) -> &'static str {
        if let Scheduler::Mh(_) = self {
            return "mh";
        }
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |&(n, _)| n)
    }

    /// The scheduler's flags as ipvsadm writes them (`mh-port,mh-fallback`); empty when none.
    pub fn flags_text(&self) -> String {
        match self {
            Scheduler::Mh(f) => {
                let mut v = Vec::new();
                if f.port {
                    v.push("mh-port");
                }
                if f.fallback {
                    v.push("mh-fallback");
                }
                v.join(",")
            }
            _ => String::new(),
        }
    }
}

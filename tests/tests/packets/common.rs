//! What the packet tests of `packets.rs` share: the verdicts, the VIPs and clients, the reals
//! and their services, a loaded data plane, and the checks of a forwarded or passed frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_tests::{
    packet::DIRECTOR_MAC,
    xdp::{Outcome, TEST_RUN_IFINDEX},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

pub const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
pub const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100));
pub const CLIENT4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
pub const CLIENT6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10));

pub fn real_ip(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i))
}

pub fn real_mac(i: u8) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, i]
}

pub fn real(i: u8, weight: u32) -> DestPlan {
    DestPlan {
        addr: real_ip(i),
        weight,
        table_weight: weight,
        target: Target::Remote {
            mac: real_mac(i),
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

/// Reals 1, 2 and 3, each of weight 1.
pub fn equal_reals() -> Vec<DestPlan> {
    vec![real(1, 1), real(2, 1), real(3, 1)]
}

pub fn service(vip: IpAddr, port: u16, protocol: Protocol, dests: Vec<DestPlan>) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(vip, port),
        protocol,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests,
        fallback: None,
        aliases: Vec::new(),
    }
}

/// A data plane with `plans`, taking frames to [`DIRECTOR_MAC`] (as the agent gives it the
/// attached interface's MAC).
pub fn loaded(plans: &[ServicePlan]) -> Dataplane {
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[DIRECTOR_MAC]).expect("own MAC");
    dp.tables.apply(plans).expect("apply plans");
    dp
}

/// Which real's MAC the frame now carries, checking the rest of the frame is untouched.
pub fn forwarded_to(input: &[u8], out: &Outcome) -> u8 {
    assert_eq!(out.verdict, XDP_TX, "expected XDP_TX");
    assert_eq!(out.frame.len(), input.len());
    assert_eq!(
        &out.frame[6..12],
        &DIRECTOR_MAC,
        "source MAC is the egress interface's"
    );
    assert_eq!(&out.frame[12..], &input[12..], "only the MACs change");
    assert_eq!(
        &out.frame[..5],
        &real_mac(0)[..5],
        "destination MAC is a real's"
    );
    out.frame[5]
}

pub fn assert_passed_untouched(input: &[u8], out: &Outcome) {
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(out.frame, input);
}

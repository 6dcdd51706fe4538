//! Types shared by the lvs XDP program (`lvs-ebpf`) and its agent (`lvs-userspace`).
//!
//! Everything that crosses the kernel/user boundary lives here once: map names and sizes, the
//! keys and values of every map, flag bits, and the few pure functions both sides must agree on
//! (the source hash used by the `sh` scheduler, persistence masks, the connection table's
//! bucket hash and its choice of a way).
//!
//! Every type is `#[repr(C)]` with explicit padding and only integer fields, so its layout is the
//! same for `bpfel-unknown-none` and the host, and any bit pattern is a valid value. With the
//! `user` feature they implement [`aya::Pod`].
#![no_std]

pub mod addr;
pub mod conns;
pub mod conntrack;
pub mod dest;
pub mod fragment;
pub mod hash;
pub mod limits;
pub mod mac;
pub mod nat;
pub mod next_hop;
pub mod service;
pub mod stats;

pub use addr::Addr;
pub use conntrack::{
    CtBucket, CtConfig, CtEntry, CtFlow, CtSlot, CtTimeouts, FlowKey, PersistKey, PersistValue,
};
pub use dest::Dest;
pub use fragment::{FragKey, FragValue};
pub use mac::OwnMacs;
pub use nat::NatReply;
pub use next_hop::{DestHop, NextHop, NextHopKey};
pub use service::{Service, VipKey};
pub use stats::{Counters, DropReason};

/// Implements `aya::Pod` for the listed types when the `user` feature is on.
macro_rules! pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is `#[repr(C)]`, made only of integers and integer arrays, with
            // explicit padding fields, so every bit pattern is a valid value and it has no
            // implicit padding bytes.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pod!(
    Addr,
    FlowKey,
    CtEntry,
    CtBucket,
    CtConfig,
    CtTimeouts,
    PersistKey,
    PersistValue,
    Dest,
    VipKey,
    Service,
    Counters,
    OwnMacs,
    FragKey,
    FragValue,
    NatReply,
    NextHopKey,
    NextHop,
    DestHop
);

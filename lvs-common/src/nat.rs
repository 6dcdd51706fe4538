//! NAT (`masq`): IPVS's state tables for connections seen both ways, the replies' 5-tuple, and
//! what a reply is translated back by.
//!
//! When the balancer remembers a flow to a NATed real, it also writes a reply way into the
//! connection table under the 5-tuple the real's replies carry ([`reply_key`]: real address
//! and port → client address and port), pointing to the flow's own way
//! ([`crate::conntrack::CT_REPLY`]). A packet that finds a reply way is a reply if the way it
//! points to still holds a flow whose replies are exactly its 5-tuple: its source becomes the
//! flow's VIP and port again ([`NatReply`]).

use crate::{
    Addr, FlowKey,
    conntrack::{ct_event, ct_state, tcp_event},
};

/// IPVS's INPUT and OUTPUT tables (`tcp_states[]`, normal, `secure_tcp` 0, current kernels),
/// which move a NATed connection, whose director sees both directions: row 0-3 the client's
/// packets (SYN, FIN, ACK, RST), rows 4-7 the real's. Column: current state NONE..SYNACK.
/// (DR and tunnel flows use the INPUT-ONLY table, [`crate::conntrack::next_state`].)
const BOTH_WAYS: [[u8; 11]; 8] = {
    use ct_state::*;
    const NO: u8 = NONE;
    const ES: u8 = ESTABLISHED;
    const SS: u8 = SYN_SENT;
    const SR: u8 = SYN_RECV;
    const FW: u8 = FIN_WAIT;
    const TW: u8 = TIME_WAIT;
    const CL: u8 = CLOSE;
    const CW: u8 = CLOSE_WAIT;
    const LA: u8 = LAST_ACK;
    const LI: u8 = LISTEN;
    let _ = NO;
    [
        // INPUT (client → real)
        //NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // SYN
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW], // FIN
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ACK
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR], // RST
        // OUTPUT (real → client)
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR], // SYN
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW], // FIN
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES], // ACK
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL], // RST
    ]
};

/// [`BOTH_WAYS`] with each row packed into one word, 4 bits per column.
const PACKED: [u64; 8] = crate::conntrack::pack_rows(BOTH_WAYS);

/// The state a NATed TCP connection in `state` moves to on a packet with flags `flags`, from
/// the client (`reply` false) or from the real (`reply` true); a UDP flow stays UDP.
#[inline(always)]
pub const fn next_state(state: u8, flags: u8, reply: bool) -> u8 {
    if state == ct_state::UDP {
        return ct_state::UDP;
    }
    let row = match tcp_event(flags) {
        ct_event::SYN => 0,
        ct_event::FIN => 1,
        ct_event::ACK => 2,
        ct_event::RST => 3,
        _ => return ct_state::CLOSE,
    };
    let row = PACKED[row + if reply { 4 } else { 0 }];
    let col = if state < 11 { state as u64 } else { 0 };
    ((row >> (4 * col)) & 0xf) as u8
}

/// What a NATed flow's reply is translated back by, as the data plane reads it from the flow's
/// way: its source's new address and port, and the flow's destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatReply {
    /// The virtual address the client sent to.
    pub vip: Addr,
    /// The virtual port, network byte order.
    pub vport_be: u16,
    /// Explicit padding, always 0.
    pub _pad: u16,
    /// The flow's destination slot.
    pub dest: u32,
    /// The slot's generation when the flow was remembered.
    pub generation: u32,
    /// Explicit padding, always 0.
    pub _pad1: u32,
}

const _: () = assert!(core::mem::size_of::<NatReply>() == 32);

/// The 5-tuple of the replies of flow `key` (client → VIP) sent to the real `real` on port
/// `real_port_be` (network byte order; 0: the VIP's port).
#[inline(always)]
pub fn reply_key(key: &FlowKey, real: &Addr, real_port_be: u16) -> FlowKey {
    FlowKey {
        src: *real,
        dst: key.src,
        sport_be: if real_port_be == 0 {
            key.dport_be
        } else {
            real_port_be
        },
        dport_be: key.sport_be,
        proto: key.proto,
        _pad0: 0,
        _pad1: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nated_connection_moves_by_both_directions() {
        use ct_state::*;
        let (s, a, f, r) = (0x02, 0x10, 0x01, 0x04);
        // The three-way handshake, data, then the real closes first.
        let mut st = crate::conntrack::first_state(true, s);
        assert_eq!(st, SYN_RECV);
        st = next_state(st, s | a, true);
        assert_eq!(st, SYN_RECV, "SYN-ACK from the real");
        st = next_state(st, a, false);
        assert_eq!(st, ESTABLISHED);
        st = next_state(st, f | a, true);
        assert_eq!(st, FIN_WAIT, "the real's FIN");
        st = next_state(st, f | a, false);
        assert_eq!(st, TIME_WAIT, "the client's FIN");
        // The client closes first: CLOSE_WAIT, then the real's FIN: TIME_WAIT.
        assert_eq!(next_state(ESTABLISHED, f | a, false), CLOSE_WAIT);
        assert_eq!(next_state(CLOSE_WAIT, f | a, true), TIME_WAIT);
        // A RST from the real closes; a SYN from it in NONE is SYN_SENT.
        assert_eq!(next_state(ESTABLISHED, r, true), CLOSE);
        assert_eq!(next_state(NONE, s, true), SYN_SENT);
        assert_eq!(next_state(UDP, a, true), UDP);
        assert_eq!(next_state(ESTABLISHED, 0, true), CLOSE, "flagless");
    }

    #[test]
    fn a_reply_key_swaps_the_ends_and_takes_the_real_port() {
        let key = FlowKey {
            src: Addr::from_v4_wire(u32::from_ne_bytes([10, 0, 0, 1])),
            dst: Addr::from_v4_wire(u32::from_ne_bytes([10, 0, 0, 100])),
            sport_be: 40000u16.to_be(),
            dport_be: 80u16.to_be(),
            proto: 6,
            _pad0: 0,
            _pad1: 0,
        };
        let real = Addr::from_v4_wire(u32::from_ne_bytes([192, 168, 1, 2]));
        for (port, want) in [(8080u16, 8080u16), (0, 80)] {
            let r = reply_key(&key, &real, port.to_be());
            assert_eq!((r.src, r.dst), (real, key.src));
            assert_eq!((r.sport_be, r.dport_be), (want.to_be(), key.sport_be));
        }
    }
}

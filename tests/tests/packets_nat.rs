//! The NAT forwarding method (`masq`) on crafted frames through BPF_PROG_TEST_RUN, in a network
//! namespace of the test's own whose FIB holds the reals (on the egress link) and the route to
//! the clients (through a router): both directions, IPv4 and IPv6, TCP and UDP, a real whose
//! port differs from the VIP's, every header and checksum compared byte for byte with one
//! recomputed here from scratch; a reply whose flow is unknown and the director's own traffic
//! passed untouched; later fragments translated; the state of a NATed connection moved by both
//! directions; the replies counted out; a reply found by its own 5-tuple in the connection
//! table. ICMP errors: `packets_nat_icmp.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lvs::{config::Protocol, dataplane::Dataplane};
use lvs_tests::{
    packet::{ACK, Frame, SYN, fix_ipv4_checksum, fragments},
    xdp::run,
};

#[path = "packets_nat/common.rs"]
mod common;
use common::*;

/// Both directions of one flow of each kind, byte for byte.
#[test]
fn both_directions_translated_byte_exact() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            for (udp, vport, rport) in [(false, 80, 8080), (true, 53, 5353)] {
                let what = format!("{vip} {}", if udp { "udp" } else { "tcp" });
                let input = to_vip(vip, vport, udp, SYN);
                let out = run(&mut dp, &input);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: out through d0");
                assert_eq!(
                    out.frame,
                    forwarded(&input, real, rport),
                    "{what}: to the real"
                );

                let reply = from_real(real, rport, udp, SYN | ACK);
                let out = run(&mut dp, &reply);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: reply out through d0");
                assert_eq!(
                    out.frame,
                    replied(&reply, vip, vport),
                    "{what}: to the client"
                );

                // The established flow's next packet, with data.
                let mut f = if udp {
                    Frame::udp(client_of(vip), 40000, vip, vport)
                } else {
                    Frame::tcp(client_of(vip), 40000, vip, vport, ACK)
                };
                f.payload = (0..=255).collect();
                let mut input = f.build();
                set_l4_checksum(&mut input, false);
                let out = run(&mut dp, &input);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: established");
                assert_eq!(
                    out.frame,
                    forwarded(&input, real, rport),
                    "{what}: established"
                );
            }
        }
    });
}

/// The replies are counted as IPVS counts them, in the OutPkts and OutBytes of the service
/// and of the real (whole frames), the client's packets in InPkts and InBytes; an ICMP error
/// from the inside about the flow is a reply too; a packet passed untranslated (a reply of
/// no flow) counts nowhere.
#[test]
fn replies_are_counted_out_for_the_service_and_the_real() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            let key = lvs::dataplane::plan::vip_key(SocketAddr::new(vip, 80), Protocol::Tcp);
            let sid = dp.tables.service_id(&key).expect("service id");
            let did = dp.tables.dest_id(&key, real).expect("dest id");
            let sent = |dp: &mut Dataplane, b: Vec<u8>| {
                assert_eq!(run(dp, &b).verdict, XDP_REDIRECT, "{vip}");
                b.len() as u64
            };
            let in1 = sent(&mut dp, to_vip(vip, 80, false, SYN));
            let out1 = sent(&mut dp, from_real(real, 8080, false, SYN | ACK));
            let in2 = sent(&mut dp, to_vip(vip, 80, false, ACK));
            let mut f = Frame::tcp(real, 8080, client_of(real), 40000, ACK);
            f.src_mac = REAL_MAC;
            f.payload = vec![7; 1000];
            let mut data = f.build();
            set_l4_checksum(&mut data, false);
            let out2 = sent(&mut dp, data);
            // A reply of no flow: passed, counted nowhere.
            let stray = from_real(real, 8081, false, ACK);
            assert_eq!(run(&mut dp, &stray).verdict, XDP_PASS);
            let want = lvs_common::Counters {
                packets: 2,
                bytes: in1 + in2,
                connections: 1,
                out_packets: 2,
                out_bytes: out1 + out2,
            };
            let stats = dp.tables.stats();
            assert_eq!(stats.service(sid).unwrap(), want, "{vip}: the service");
            assert_eq!(stats.dest(did).unwrap(), want, "{vip}: the real");
        }
    });
}

/// A UDP-over-IPv4 datagram without a checksum (0) keeps none, both ways; the real's port 0
/// keeps the VIP's.
#[test]
fn no_udp_checksum_stays_none_and_port_0_keeps_the_vips() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let mut input = Frame::udp(CLIENT4.into(), 40001, VIP4.into(), 53).build();
        assert_eq!(&input[40..42], &[0, 0]);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(&out.frame[40..42], &[0, 0], "no checksum");
        assert_eq!(out.frame, forwarded(&input, REAL4.into(), 5353));
        let mut reply = Frame::udp(REAL4.into(), 5353, CLIENT4.into(), 40001);
        reply.src_mac = REAL_MAC;
        let reply = reply.build();
        let out = run(&mut dp, &reply);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(out.frame, replied(&reply, VIP4.into(), 53));

        input = to_vip(VIP4.into(), 443, false, SYN);
        let out = run(&mut dp, &input);
        assert_eq!(out.verdict, XDP_REDIRECT);
        assert_eq!(out.frame, forwarded(&input, REAL4.into(), 443), "port kept");
        let reply = from_real(REAL4.into(), 443, false, SYN | ACK);
        let out = run(&mut dp, &reply);
        assert_eq!(out.frame, replied(&reply, VIP4.into(), 443));
    });
}

/// What is not a NATed flow's reply is XDP_PASS, untouched: the real's packet to a client it
/// has no flow with (or from another port), the director's own traffic, a reply fragment.
#[test]
fn traffic_of_no_nated_flow_passes_untouched() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let untouched = |dp: &mut Dataplane, b: &[u8], what: &str| {
            let out = run(dp, b);
            assert_eq!((out.verdict, out.frame.as_slice()), (XDP_PASS, b), "{what}");
        };
        untouched(
            &mut dp,
            &from_real(REAL4.into(), 8080, false, SYN | ACK),
            "no flow yet",
        );
        let input = to_vip(VIP4.into(), 80, false, SYN);
        assert_eq!(run(&mut dp, &input).verdict, XDP_REDIRECT);
        untouched(
            &mut dp,
            &from_real(REAL4.into(), 8081, false, ACK),
            "another port",
        );
        let mut own = Frame::tcp(
            Ipv4Addr::new(10, 99, 0, 50).into(),
            50000,
            Ipv4Addr::new(10, 99, 0, 1).into(),
            22,
            SYN,
        )
        .build();
        set_l4_checksum(&mut own, false);
        untouched(&mut dp, &own, "the director's own traffic");
        let mut own6 = Frame::tcp(
            REAL6.into(),
            8080,
            Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1).into(),
            22,
            SYN,
        )
        .build();
        set_l4_checksum(&mut own6, false);
        untouched(&mut dp, &own6, "a real's own traffic to the director");
        // The flow's reply, whole, is translated.
        assert_eq!(
            run(&mut dp, &from_real(REAL4.into(), 8080, false, SYN | ACK)).verdict,
            XDP_REDIRECT
        );
    });
}

/// A fragmented datagram to the VIP: every fragment gets the real's address (the first its
/// port and the transport checksum for the whole datagram), IPv4 header checksums right.
#[test]
fn later_fragments_are_translated() {
    in_lab_netns(|| {
        let mut dp = loaded();
        for vip in [IpAddr::from(VIP4), IpAddr::from(VIP6)] {
            let real = real_of(vip);
            let mut f = Frame::udp(client_of(vip), 40002, vip, 53);
            f.payload = (0..200u8).collect();
            let frags = fragments(&f, 64, 0x4242);
            // The whole datagram as the real must reassemble it: its checksum from scratch.
            let mut whole = f.build();
            set_l4_checksum(&mut whole, false);
            let want = forwarded(&whole, real, 5353);
            let l3 = 14;
            let (unfrag, addr_at) = if vip.is_ipv4() { (20, 16) } else { (48, 24) };
            let mut data = Vec::new();
            for (i, fr) in frags.iter().enumerate() {
                let out = run(&mut dp, fr);
                assert_eq!(out.verdict, XDP_REDIRECT, "{vip}: fragment {i}");
                let o = &out.frame;
                let a = octets(real);
                assert_eq!(
                    &o[l3 + addr_at..l3 + addr_at + a.len()],
                    a.as_slice(),
                    "{vip}: fragment {i}'s destination"
                );
                if vip.is_ipv4() {
                    let mut fixed = o.clone();
                    fix_ipv4_checksum(&mut fixed, l3);
                    assert_eq!(&fixed, o, "{vip}: fragment {i}'s header checksum");
                    assert_eq!(o[22], 63, "TTL");
                } else {
                    assert_eq!(o[21], 63, "hop limit");
                }
                data.extend_from_slice(&o[l3 + unfrag..]);
            }
            let l4 = if vip.is_ipv4() { 34 } else { 54 };
            assert_eq!(
                data,
                want[l4..],
                "{vip}: the datagram as the real reassembles it"
            );
        }
    });
}

/// A NATed connection's state follows both directions (IPVS's INPUT and OUTPUT tables), and
/// with it the real's ActiveConn/InActConn: the real's RST to a SYN (a closed port) closes the
/// connection (inactive), where DR's INPUT-ONLY table, or the client's packets alone, would
/// keep it in SYN_RECV (active); an established connection reset by the real is closed too.
#[test]
fn the_state_follows_both_directions() {
    in_lab_netns(|| {
        let mut dp = loaded();
        let key = lvs::dataplane::plan::vip_key(SocketAddr::new(VIP4.into(), 80), Protocol::Tcp);
        let id = dp.tables.dest_id(&key, REAL4.into()).expect("dest id");
        let conns = |dp: &Dataplane| dp.tables.conns(id).expect("counts");
        let sent = |dp: &mut Dataplane, b: Vec<u8>| assert_eq!(run(dp, &b).verdict, XDP_REDIRECT);
        sent(&mut dp, to_vip(VIP4.into(), 80, false, SYN));
        assert_eq!(conns(&dp), (1, 0), "SYN_RECV: active");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, 0x04 | ACK));
        assert_eq!(
            conns(&dp),
            (0, 1),
            "CLOSE, by the real's RST to the SYN: inactive"
        );
        // The client's next SYN is a new connection (from CLOSE): counted anew, once.
        sent(&mut dp, to_vip(VIP4.into(), 80, false, SYN));
        assert_eq!(conns(&dp), (1, 0), "SYN_RECV again");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, SYN | ACK));
        sent(&mut dp, to_vip(VIP4.into(), 80, false, ACK));
        assert_eq!(conns(&dp), (1, 0), "ESTABLISHED: active");
        sent(&mut dp, from_real(REAL4.into(), 8080, false, 0x04));
        assert_eq!(conns(&dp), (0, 1), "CLOSE, by the real's RST: inactive");
        // The client's FIN then keeps it closed (INPUT table: CLOSE stays CLOSE).
        sent(&mut dp, to_vip(VIP4.into(), 80, false, 0x01 | ACK));
        assert_eq!(conns(&dp), (0, 1));
    });
}

/// A NATed flow's reply is known by its own 5-tuple in the connection table: a reply way
/// (state `CT_REPLY`, no destination of its own) that points to the flow's way, and is not
/// counted (the real holds one connection). A reply whose way points to a way that no longer
/// holds its flow (taken by another flow) passes untouched, and so does one whose flow's real
/// port is not the reply's.
#[test]
fn a_reply_is_found_by_its_own_5_tuple_in_the_connection_table() {
    use lvs_common::conntrack::{CT_REPLY, CT_REPLY_DEST, reply_place};
    use lvs_tests::xdp::{bucket_of, ct_map, ct_seed, flow_key};
    in_lab_netns(|| {
        let mut dp = loaded();
        let vip: IpAddr = VIP4.into();
        let (reply, _) = opened(&mut dp, vip);
        let id = dp
            .tables
            .dest_id(
                &nat_service(vip, 80, Protocol::Tcp, REAL4.into(), 8080).key(),
                REAL4.into(),
            )
            .expect("the real's slot");
        assert_eq!(
            dp.tables.conns(id).expect("counts"),
            (1, 0),
            "one connection"
        );
        let seed = ct_seed(&mut dp);
        let flow = flow_key(client_of(vip), 40000, vip, 80, 6);
        let rkey = flow_key(REAL4.into(), 8080, client_of(vip), 40000, 6);
        let (fb, rb) = (bucket_of(&flow, seed), bucket_of(&rkey, seed));
        let ways = ct_map(&mut dp).get(&rb, 0).expect("bucket").ways();
        let r = ways
            .iter()
            .find(|e| e.key == rkey)
            .expect("a reply way under the reply's 5-tuple");
        assert_eq!((r.state(), r.dest), (CT_REPLY, CT_REPLY_DEST));
        let (b, w) =
            reply_place(lvs_common::conntrack::dest_word(r.dest, r.generation)).expect("a place");
        assert_eq!(b, fb, "the flow's bucket");
        let mut bucket = ct_map(&mut dp).get(&fb, 0).expect("bucket");
        assert_eq!(bucket.flows[w as usize].key, flow, "the flow's way");

        // The flow's way taken by another flow (another client port): the reply (a RST) is
        // no reply, and leaves that flow's state and counts alone.
        let state = bucket.ways()[w as usize].state();
        bucket.flows[w as usize].key.sport_be = 40001u16.to_be();
        ct_map(&mut dp).set(fb, bucket, 0).expect("write");
        let rst = from_real(REAL4.into(), 8080, false, 0x04);
        let out = run(&mut dp, &rst);
        assert_eq!((out.verdict, &out.frame), (XDP_PASS, &rst), "flow gone");
        let after = ct_map(&mut dp).get(&fb, 0).expect("bucket").ways()[w as usize];
        assert_eq!(
            after.state(),
            state,
            "the other flow's state, moved by the RST"
        );
        assert_eq!(dp.tables.conns(id).expect("counts"), (1, 0), "its counts");
        // Back: translated again.
        bucket.flows[w as usize].key = flow;
        ct_map(&mut dp).set(fb, bucket, 0).expect("write");
        assert_eq!(run(&mut dp, &reply).verdict, XDP_REDIRECT, "flow back");
    });
}

/// Runs `f` with a pin directory on a bpf filesystem of its own, mounted for the test and
/// removed after it (also when `f` panics), and a loader of NATed data planes pinned there
/// with tables of the given size.
fn with_pins(name: &str, f: impl FnOnce(&dyn Fn(u32) -> Dataplane, &std::path::Path)) {
    use lvs::{
        config::TableSizes,
        lab::{mount_bpffs, unmount_bpffs},
    };
    let dir = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
    mount_bpffs(&dir).expect("mounting a bpffs");
    let pins = dir.join("lvs/test");
    let load = |connections| {
        let mut dp = Dataplane::load_pinned_sized(
            &pins,
            TableSizes {
                connections,
                persistence: 1024,
            },
        )
        .expect("load pinned");
        dp.set_own_macs(&[lvs_tests::packet::DIRECTOR_MAC])
            .expect("own MAC");
        dp.tables
            .apply(&[
                nat_service(VIP4.into(), 80, Protocol::Tcp, REAL4.into(), 8080),
                nat_service(VIP6.into(), 80, Protocol::Tcp, REAL6.into(), 8080),
            ])
            .expect("apply plans");
        dp
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&load, &pins)));
    unmount_bpffs(&dir);
    let _ = std::fs::remove_dir(&dir);
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// A NATed flow's replies are still translated after the pinned connection table is resized:
/// the agent makes each NATed flow's reply way anew in the new table, pointing to the flow's
/// new way (a reply way's place in the old table means nothing in the new one).
#[test]
fn a_resized_table_keeps_the_replies_of_nated_flows() {
    in_lab_netns(|| {
        with_pins("natresize", |load, _| {
            let mut dp = load(16384);
            let before: Vec<_> = [IpAddr::from(VIP4), VIP6.into()]
                .into_iter()
                .map(|vip| opened(&mut dp, vip))
                .collect();
            drop(dp);
            let mut dp = load(65536);
            assert_eq!(dp.sizes().connections, 65536, "resized");
            for (reply, translated) in &before {
                let out = run(&mut dp, reply);
                assert_eq!(
                    (out.verdict, &out.frame),
                    (XDP_REDIRECT, translated),
                    "the reply after the resize"
                );
            }
            dp.release(true).expect("release");
        });
    });
}

/// A pinned table kept from an lvs that held NATed replies in a map of its own
/// (`LVS_NAT_REPLIES`: its pin is there, the table's NATed flows have no reply way) is given
/// reply ways for its NATed flows when the agent adopts it, and the old map's pin goes.
#[test]
fn a_table_from_before_reply_ways_gets_them_when_adopted() {
    use lvs_common::limits::map_names;
    use lvs_tests::xdp::{bucket_of, ct_map, ct_seed, flow_key};
    in_lab_netns(|| {
        with_pins("natupgrade", |load, pins| {
            let mut dp = load(lvs_common::limits::CONNTRACK_ENTRIES);
            let vip: IpAddr = VIP4.into();
            let (reply, translated) = opened(&mut dp, vip);
            // (The table of the object's size: the one `bucket_of` hashes into.)
            // As an earlier lvs left it: the reply way's key is another flow's (none), and the
            // old map's pin is there (any map will do).
            let rkey = flow_key(REAL4.into(), 8080, client_of(vip), 40000, 6);
            let b = bucket_of(&rkey, ct_seed(&mut dp));
            let mut bucket = ct_map(&mut dp).get(&b, 0).expect("bucket");
            let w = (0..bucket.flows.len())
                .find(|&w| bucket.flows[w].key == rkey)
                .expect("the reply way");
            bucket.flows[w].key.dport_be = 1u16.to_be();
            ct_map(&mut dp).set(b, bucket, 0).expect("write");
            let out = run(&mut dp, &reply);
            assert_eq!(
                (out.verdict, &out.frame),
                (XDP_PASS, &reply),
                "no reply way"
            );
            let retired = pins.join(map_names::RETIRED[0]);
            aya::maps::MapData::from_pin(pins.join(map_names::DROPS))
                .expect("a pinned map")
                .pin(&retired)
                .expect("pin");
            drop(dp);

            let mut dp = load(lvs_common::limits::CONNTRACK_ENTRIES);
            let out = run(&mut dp, &reply);
            assert_eq!(
                (out.verdict, &out.frame),
                (XDP_REDIRECT, &translated),
                "the reply after the adoption"
            );
            assert!(!retired.exists(), "the old map's pin is gone");
            dp.release(true).expect("release");
        });
    });
}

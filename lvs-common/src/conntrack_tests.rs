use super::*;

fn key(port: u16) -> FlowKey {
    FlowKey {
        src: Addr::from_v4_wire(u32::from_ne_bytes([198, 18, 1, 10])),
        dst: Addr::from_v4_wire(u32::from_ne_bytes([198, 18, 0, 100])),
        sport_be: port.to_be(),
        dport_be: 80u16.to_be(),
        proto: 6,
        _pad0: 0,
        _pad1: 0,
    }
}

/// The memory of `bucket` as 32 words.
fn image(bucket: &CtBucket) -> [u64; 32] {
    // SAFETY: `CtBucket` is 256 bytes, without implicit padding.
    unsafe { core::mem::transmute(*bucket) }
}

#[test]
fn words_are_the_memory_image_of_the_key_in_a_bucket() {
    let e = CtEntry {
        seq: 2,
        key: FlowKey {
            _pad0: 0x5a,
            _pad1: 0x1234,
            ..key(40000)
        },
        dest: 7,
        generation: 9,
        last_seen_ns: 11,
    };
    let mut ways = [CtEntry::default(); CT_WAYS];
    ways[1] = e;
    let bucket = CtBucket::from_ways(&ways, &[0, 0xabcd, 0, 0]);
    let m = image(&bucket);
    // Heads: way 1's (seq, tag) word and its time in the first line.
    assert_eq!((m[2], m[3]), (seq_tag(2, 0xabcd), 11));
    assert_eq!(split_seq_tag(m[2]), (2, 0xabcd));
    // Flows from byte 64 on, 48 bytes each: way 1's at byte 112.
    let flow = (64 + 48 + CT_KEY_OFFSET) / 8;
    assert_eq!(m[flow..flow + 5], e.key.words());
    assert_eq!(m[(64 + 48 + CT_DEST_OFFSET) / 8], dest_word(7, 9));
    assert_eq!(split_dest_word(dest_word(7, 9)), (7, 9));
    assert_eq!(bucket.ways()[1], e);
    assert_eq!(bucket.ways()[0], CtEntry::default());
}

#[test]
fn an_entry_holds_its_key_and_no_other() {
    let e = CtEntry {
        seq: 4,
        key: key(1),
        ..CtEntry::default()
    };
    assert!(e.holds(&key(1)));
    assert!(!e.holds(&key(2)));
    assert!(
        !CtEntry::default().holds(&FlowKey::default()),
        "empty holds nothing"
    );
    let mut other_vip = key(1);
    other_vip.dst.words[3] ^= 1;
    assert!(!e.holds(&other_vip));
    assert!(same_flow(&key(3).words(), &key(3).words()));
}

#[test]
fn live_means_stable_written_and_within_the_timeout_of_its_state() {
    let t = CtTimeouts::ipvs(900, 120, 300);
    let s = 1_000_000_000u64;
    let e = CtEntry {
        seq: 6,
        last_seen_ns: seen_word(1_000 * s, ct_state::FIN_WAIT),
        ..CtEntry::default()
    };
    assert_eq!(e.state(), ct_state::FIN_WAIT);
    assert_eq!(e.seen_ns(), (1_000 * s) & !STATE_MASK);
    assert!(e.is_live(1_120 * s - 16, &t));
    assert!(!e.is_live(1_121 * s, &t), "past FIN_WAIT's 120 s");
    let est = CtEntry {
        last_seen_ns: seen_word(1_000 * s, ct_state::ESTABLISHED),
        ..e
    };
    assert!(est.is_live(1_121 * s, &t), "ESTABLISHED has 900 s");
    assert!(!est.is_live(1_901 * s, &t));
    assert!(
        e.is_live(900 * s, &t),
        "a time from another CPU a bit ahead"
    );
    assert!(
        !CtEntry { seq: 7, ..e }.is_live(1_000 * s, &t),
        "being written"
    );
    assert!(!CtEntry::default().is_live(0, &t), "empty");
}

#[test]
fn the_input_only_table_drives_a_dr_connection() {
    use ct_state::*;
    const F: u8 = 0x01;
    const S: u8 = 0x02;
    const R: u8 = 0x04;
    const A: u8 = 0x10;
    assert_eq!(first_state(true, S), SYN_RECV);
    assert_eq!(
        first_state(true, A),
        ESTABLISHED,
        "mid-stream ACK (current kernels)"
    );
    assert_eq!(first_state(true, F | A), CLOSE);
    assert_eq!(first_state(false, 0), UDP);
    assert_eq!(next_state(SYN_RECV, A), ESTABLISHED);
    assert_eq!(next_state(SYN_RECV, S), SYN_RECV, "retransmitted SYN");
    assert_eq!(next_state(SYN_RECV, R), SYN_RECV, "RST in SYN_RECV stays");
    assert_eq!(next_state(ESTABLISHED, A | 0x08), ESTABLISHED);
    assert_eq!(next_state(ESTABLISHED, F | A), FIN_WAIT);
    assert_eq!(next_state(ESTABLISHED, R | A), CLOSE, "RST before ACK");
    assert_eq!(
        next_state(ESTABLISHED, S | A | F),
        ESTABLISHED,
        "SYN before FIN"
    );
    assert_eq!(next_state(ESTABLISHED, 0), CLOSE, "flagless");
    assert_eq!(next_state(FIN_WAIT, A), FIN_WAIT);
    assert_eq!(next_state(FIN_WAIT, S), SYN_RECV);
    assert_eq!(next_state(CLOSE, S), SYN_RECV);
    assert_eq!(next_state(CLOSE, A), CLOSE);
    assert_eq!(next_state(LAST_ACK, A), CLOSE);
    assert_eq!(next_state(SYN_RECV, F), TIME_WAIT);
    assert_eq!(next_state(UDP, S), UDP);
    assert!(syn_keeps_real(SYN_RECV) && syn_keeps_real(ESTABLISHED) && syn_keeps_real(FIN_WAIT));
    assert!(!syn_keeps_real(CLOSE) && !syn_keeps_real(TIME_WAIT));
    let mut active = [false; 12];
    for (s, a) in active.iter_mut().enumerate() {
        *a = is_active_state(s as u8);
    }
    let on = [ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK];
    for (s, a) in active.iter().enumerate() {
        assert_eq!(*a, on.contains(&(s as u8)), "state {s}");
    }
    let t = CtTimeouts::DEFAULT.secs;
    assert_eq!(
        [
            t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11]
        ],
        [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120, 300]
    );
}

#[test]
fn writers_prefer_the_own_key_then_empty_then_the_least_recently_seen() {
    // Way 0: another flow seen at 50; 1: empty; 2: this flow; 3: being written.
    let ranks = [
        claim_rank(2, false, 50),
        claim_rank(0, false, 0),
        claim_rank(8, true, 90),
        claim_rank(5, false, 0),
    ];
    assert_eq!(next_way(&ranks, 0), Some(2));
    assert_eq!(next_way(&ranks, 0b0100), Some(1));
    assert_eq!(next_way(&ranks, 0b0110), Some(0));
    assert_eq!(next_way(&ranks, 0b0111), None, "never a way being written");

    // A full bucket: the oldest goes, the first of equals on a tie; by time only, the
    // state bits aside.
    let full = [
        seen_word(300, ct_state::ESTABLISHED),
        seen_word(100, ct_state::SYN_RECV),
        seen_word(200, ct_state::NONE),
        seen_word(100, ct_state::ESTABLISHED),
    ]
    .map(|seen| claim_rank(2, false, seen));
    assert_eq!(next_way(&full, 0), Some(1));
    assert_eq!(next_way(&full, 0b0010), Some(3));
    assert_eq!(next_way(&full, 0b1010), Some(2));
    // An empty bucket fills in way order.
    assert_eq!(next_way(&[claim_rank(0, false, 0); CT_WAYS], 0), Some(0));
    // Ranking stops at the own key or an empty way, not at a way being written or in use.
    assert!(rest_ranks_higher(claim_rank(4, true, 9)));
    assert!(rest_ranks_higher(claim_rank(0, false, 0)));
    assert!(!rest_ranks_higher(claim_rank(3, false, 0)));
    assert!(!rest_ranks_higher(claim_rank(4, false, 0)));
    assert!(rest_is_empty(0) && !rest_is_empty(1) && !rest_is_empty(2));
    assert_eq!(
        (next_seq(0), next_seq(2), next_seq(u32::MAX - 1)),
        (2, 4, 2)
    );
    // An entry seen at time 0 still ranks after an empty way.
    assert!(claim_rank(2, false, 0) > claim_rank(0, false, 0));
}

#[test]
fn a_key_comes_back_from_its_words() {
    let key = FlowKey {
        src: Addr {
            words: [1, 2, 3, 0xdead_beef],
        },
        dst: Addr {
            words: [5, 6, 7, 8],
        },
        sport_be: 0x1234,
        dport_be: 0x5678,
        proto: 17,
        _pad0: 0,
        _pad1: 0,
    };
    assert_eq!(FlowKey::from_words(&key.words()), key);
}

#[test]
fn a_reply_way_points_to_its_flows_place() {
    for (b, w) in [(0, 0), (1, 3), ((1 << 24) - 1, 2)] {
        let word = reply_word(b, w);
        assert_eq!(reply_place(word), Some((b, w)));
        assert_eq!(split_dest_word(word).0, CT_REPLY_DEST);
    }
    // A flow's own destination word is no reply way's.
    assert_eq!(reply_place(dest_word(7, 3)), None);
}

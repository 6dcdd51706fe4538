//! Each output against ipvsadm's formats. The expected texts were made by applying
//! ipvsadm.c's printf formats (`"  -> %-28s %-7s %-6d %-10u %-10u\n"`, `print_largenum`'s
//! `%9llu` / `%8lluK`..., `print_title`'s `%-33s %8s`...) to the same table with Python's
//! printf-compatible `%` operator, not with this module's code.

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn st(v: [u64; 5]) -> Stats {
    Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn real(a: &str, weight: u32, active: u64, inactive: u64, s: [u64; 5]) -> RealView {
    RealView {
        addr: sa(a),
        method: Method::Route,
        weight,
        active,
        inactive,
        u_threshold: 0,
        l_threshold: 0,
        stats: st(s),
    }
}

/// The table, in an order that is not ipvsadm's (it sorts).
fn table() -> Vec<ServiceView> {
    vec![
        ServiceView {
            proto: Proto::Tcp,
            addr: sa("10.0.0.1:80"),
            fwmark: None,
            flags: None,
            ops: false,
            scheduler: "wrr".into(),
            persistent: None,
            netmask: 32,
            stats: st([5, 1234567, 0, 123456789012, 0]),
            reals: vec![
                real("10.0.1.2:80", 2, 3, 1, [3, 1233567, 0, 123456639012, 0]),
                real("10.0.1.1:80", 1, 0, 0, [2, 1000, 0, 150000, 0]),
            ],
        },
        ServiceView {
            proto: Proto::Udp,
            addr: sa("[2001:db8::1]:53"),
            fwmark: None,
            flags: None,
            ops: false,
            scheduler: "rr".into(),
            persistent: Some(600),
            netmask: 64,
            stats: Stats::default(),
            reals: vec![real("[2001:db8::10]:53", 0, 0, 7, [0; 5])],
        },
        ServiceView {
            proto: Proto::Tcp,
            addr: sa("10.0.0.2:443"),
            fwmark: None,
            flags: None,
            ops: false,
            scheduler: "sh".into(),
            persistent: Some(300),
            netmask: 24,
            stats: Stats::default(),
            reals: vec![],
        },
    ]
}

const LIST: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port Scheduler Flags\n",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    "TCP  10.0.0.1:80 wrr\n",
    "  -> 10.0.1.1:80                  Route   1      0          0         \n",
    "  -> 10.0.1.2:80                  Route   2      3          1         \n",
    "TCP  10.0.0.2:443 sh persistent 300 mask 255.255.255.0\n",
    "UDP  [2001:db8::1]:53 rr persistent 600 mask 64\n",
    "  -> [2001:db8::10]:53            Route   0      0          7         \n",
);
const STATS: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80                         5  1234567        0     123G        0\n",
    "  -> 10.0.1.1:80                         2     1000        0   150000        0\n",
    "  -> 10.0.1.2:80                         3  1233567        0     123G        0\n",
    "TCP  10.0.0.2:443                        0        0        0        0        0\n",
    "UDP  [2001:db8::1]:53                    0        0        0        0        0\n",
    "  -> [2001:db8::10]:53                   0        0        0        0        0\n",
);
const STATS_EXACT: &str = concat!(
    "IP Virtual Server version 1.2.1 (size=4096)\n",
    "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
    "  -> RemoteAddress:Port\n",
    "TCP  10.0.0.1:80                         5  1234567        0 123456789012        0\n",
    "  -> 10.0.1.1:80                         2     1000        0   150000        0\n",
    "  -> 10.0.1.2:80                         3  1233567        0 123456639012        0\n",
    "TCP  10.0.0.2:443                        0        0        0        0        0\n",
    "UDP  [2001:db8::1]:53                    0        0        0        0        0\n",
    "  -> [2001:db8::10]:53                   0        0        0        0        0\n",
);
const SAVE: &str = concat!(
    "-A -t 10.0.0.1:80 -s wrr\n",
    "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n",
    "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -g -w 2\n",
    "-A -t 10.0.0.2:443 -s sh -p 300 -M 255.255.255.0\n",
    "-A -u [2001:db8::1]:53 -s rr -p 600 -M 64\n",
    "-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 0\n",
);
const RATE_ROW: &str =
    "  -> 10.0.1.1:80                         2     1000        0   150000        0\n";
const CONN: &str = concat!(
    "IPVS connection entries\n",
    "pro expire state       source             virtual            destination\n",
    "TCP 14:59  ESTABLISHED 10.0.9.9:40000     10.0.0.1:80        10.0.1.1:80\n",
);
const THRESH_HEAD: &str = concat!(
    "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
    "  -> RemoteAddress:Port\n",
);

#[test]
fn list_numeric_is_ipvsadms_layout() {
    assert_eq!(list(table(), 4096, Format::default()), LIST);
}

#[test]
fn stats_and_exact_are_ipvsadms_layout() {
    let f = Format {
        stats: true,
        ..Format::default()
    };
    assert_eq!(list(table(), 4096, f), STATS);
    let f = Format {
        stats: true,
        exact: true,
        ..Format::default()
    };
    assert_eq!(list(table(), 4096, f), STATS_EXACT);
}

#[test]
fn rate_rows_are_ipvsadms_layout() {
    let before: Vec<ServiceView> = table()
        .into_iter()
        .map(|mut s| {
            s.stats = Stats::default();
            for r in &mut s.reals {
                r.stats = Stats::default();
            }
            s
        })
        .collect();
    let f = Format {
        rate: true,
        ..Format::default()
    };
    let out = list(rates(&before, &table(), 1.0), 4096, f);
    assert!(
        out.contains(
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"
        ),
        "{out}"
    );
    assert!(out.contains(RATE_ROW), "{out}");
    // Per second: half over two seconds.
    let half = rates(&before, &table(), 2.0);
    assert_eq!(half[0].reals[1].stats.inpkts, 500);
}

#[test]
fn save_is_ipvsadm_save_n() {
    assert_eq!(save(table(), false), SAVE);
}

#[test]
fn connections_and_thresholds_are_ipvsadms_layout() {
    let c = Connection {
        protocol: "TCP".into(),
        expires_s: 899,
        state: "ESTABLISHED".into(),
        source: sa("10.0.9.9:40000"),
        virtual_addr: sa("10.0.0.1:80"),
        destination: sa("10.0.1.1:80"),
    };
    assert_eq!(connections(&[c], false), CONN);
    let f = Format {
        thresholds: true,
        ..Format::default()
    };
    assert!(list_one(&table()[2], f).starts_with(THRESH_HEAD));
    assert!(list(table(), 4096, f).contains(
        "  -> 10.0.1.2:80                  0          0          3          1         \n"
    ));
}

#[test]
fn largenum_units() {
    let mut o = String::new();
    for i in [
        99_999_999,
        100_000_000,
        999_999_999_999,
        100_000_000_000_000,
    ] {
        largenum(&mut o, i, false);
    }
    assert_eq!(o, " 99999999  100000K     999G     100T");
}

#[test]
fn firewall_marks_are_listed_and_saved_as_ipvsadm_prints_them() {
    let mark = |m: u32, v6: bool, sched: &str| ServiceView {
        proto: Proto::Tcp,
        addr: if v6 { sa("[::]:0") } else { sa("0.0.0.0:0") },
        fwmark: Some(m),
        scheduler: sched.into(),
        flags: (sched == "mh").then(|| "mh-fallback,mh-port".to_string()),
        // One-packet scheduling, printed after the persistence as ipvsadm prints it.
        ops: m == 3,
        persistent: Some(300),
        netmask: if v6 { 128 } else { 32 },
        stats: Stats::default(),
        reals: vec![real("10.0.1.1:0", 3, 0, 0, [0; 5])],
    };
    let mut t = vec![mark(7, true, "mh"), mark(3, false, "wlc")];
    t.push(table().remove(2));
    t[0].reals[0].method = Method::Tunnel;
    assert_eq!(
        list(t.clone(), 4096, Format::default()),
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.2:443 sh persistent 300 mask 255.255.255.0\n",
            "FWM  3 wlc persistent 300 ops\n",
            "  -> 10.0.1.1:0                   Route   3      0          0         \n",
            "FWM  7 IPv6 mh (mh-fallback,mh-port) persistent 300\n",
            "  -> 10.0.1.1:0                   Tunnel  3      0          0         \n",
        )
    );
    assert_eq!(
        save(t.clone(), false),
        concat!(
            "-A -t 10.0.0.2:443 -s sh -p 300 -M 255.255.255.0\n",
            "-A -f 3 -s wlc -p 300 -o\n",
            "-a -f 3 -r 10.0.1.1:0 -g -w 3\n",
            "-A -f 7 -6 -s mh -p 300 -b mh-fallback,mh-port\n",
            "-a -f 7 -6 -r 10.0.1.1:0 -i -w 3 --tun-type ipip\n",
        )
    );
    // What -S writes, -R reads.
    for line in save(t, false).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        crate::ipvsadm::args::parse(&words).unwrap_or_else(|e| panic!("{line}: {e:?}"));
    }
}

#[test]
fn zero_of_one_service_names_it_by_address_or_by_mark() {
    use crate::ipvsadm::rules::Key;
    let mut views = table();
    // A firewall-mark service: listed by its first match's address, named by `-f 5`.
    views[2].fwmark = Some(5);
    let of = |only: Option<&Key>| -> Vec<(SocketAddr, Option<SocketAddr>)> {
        zero_bases(&views, only)
            .into_iter()
            .map(|b| (b.service, b.real))
            .collect()
    };
    assert_eq!(
        of(Some(&Key::addr(Proto::Tcp, sa("10.0.0.1:80")))),
        [
            (sa("10.0.0.1:80"), None),
            (sa("10.0.0.1:80"), Some(sa("10.0.1.2:80"))),
            (sa("10.0.0.1:80"), Some(sa("10.0.1.1:80"))),
        ]
    );
    assert_eq!(of(Some(&Key::mark(5, false))), [(sa("10.0.0.2:443"), None)]);
    // Not by its address, not in the other family, not another mark.
    assert!(of(Some(&Key::addr(Proto::Tcp, sa("10.0.0.2:443")))).is_empty());
    assert!(of(Some(&Key::mark(5, true))).is_empty());
    assert!(of(Some(&Key::mark(6, false))).is_empty());
    assert_eq!(of(None).len(), 3 + 3);
}

//! The classic LVS-NAT director, end to end in the namespace lab: the clients on its eth0 (the
//! VIPs' interface), the reals on a private subnet (10.88.0.0/24, fd88::/64) behind its eth1,
//! their default route the director's eth1 address. Nothing in the config names eth1: the
//! agent finds it by the routes to the NATed reals and attaches the balancer there too, since
//! the replies come in on it. The reals serve on port 8080 behind the VIPs' port 80: the
//! 3:2:1 split, large downloads intact, a long request (an upload) intact, IPv4 and IPv6, the
//! replies counted out.

use std::{net::SocketAddr, process::Command, time::Duration};

use aya::programs::{Xdp, XdpMode};
use lvs::{
    dataplane::object::EBPF_OBJECT,
    lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns},
};
use lvs_common::limits::program_names;
use lvs_tests::{
    agent::{
        RunningLvs, assert_split_downloads_and_uploads, move_reals_inside, sh_in, vips,
        wrr_3_2_1_config,
    },
    wait,
};

/// The reals of the IPv4 and the IPv6 service, weights 3, 2 and 1, all behind eth1.
const REALS: [[&str; 3]; 2] = [
    ["10.88.0.11:8080", "10.88.0.12:8080", "10.88.0.13:8080"],
    ["[fd88::11]:8080", "[fd88::12]:8080", "[fd88::13]:8080"],
];

/// The lab with a second segment: bridge br1 in the switch, the director's eth1 on it
/// (10.88.0.1, fd88::1), every real moved onto it with an inside address and its default
/// route through eth1. Returns the lab and the object holding `lvs_pass` on eth1's peer
/// (native XDP_REDIRECT into eth1 needs a program there).
fn two_nic_lab() -> (Lab, aya::Ebpf) {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        http_port: 8080,
        ..LabOptions::default()
    })
    .expect("lab");
    let sw = lab.switch_ns().to_string();
    let dir = lab.director_ns().to_string();
    wait::succeed(Command::new("ip").args([
        "-n", &sw, "link", "add", "dir1", "type", "veth", "peer", "name", "eth1", "netns", &dir,
    ]));
    let mut ports = String::new();
    for r in lab.reals() {
        ports.push_str(&format!(
            "ip link set {p} nomaster\nip link set {p} master br1\n",
            p = r.switch_port
        ));
    }
    sh_in(
        &sw,
        &format!(
            "ip link add br1 type bridge forward_delay 0 stp_state 0
             ip link set br1 up
             ip link set dir1 master br1 up
             {ports}"
        ),
    );
    sh_in(
        &dir,
        "ethtool -K eth1 tx off > /dev/null
         ip link set eth1 up
         ip addr add 10.88.0.1/24 dev eth1
         ip -6 addr add fd88::1/64 dev eth1 nodad
         sysctl -qw net.ipv4.conf.eth1.arp_announce=2
         sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
         sysctl -qw net.ipv4.conf.eth1.forwarding=1
         sysctl -qw net.ipv6.conf.all.forwarding=1
         sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth1.send_redirects=0",
    );
    move_reals_inside(&lab);
    let pass = run_in_netns(&sw, || {
        let mut ebpf = aya::Ebpf::load(EBPF_OBJECT).expect("the object");
        let prog: &mut Xdp = ebpf
            .program_mut(program_names::PASS)
            .expect("lvs_pass")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("loading lvs_pass");
        prog.attach("dir1", XdpMode::Driver)
            .expect("lvs_pass on eth1's peer");
        ebpf
    })
    .expect("in the switch");
    (lab, pass)
}

#[test]
fn nat_across_two_interfaces_split_downloads_and_uploads_intact() {
    let (lab, _pass) = two_nic_lab();
    // The reals reach the clients only through the director's eth1.
    for r in lab.reals() {
        for client in [lab.client_v4().to_string(), lab.client_v6().to_string()] {
            let out = lab
                .command(&r.ns, "ip")
                .args(["route", "get", &client])
                .output()
                .expect("ip route get");
            let route = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                route.contains("via 10.88.0.1") || route.contains("via fd88::1"),
                "{}: the route to the client is not through the director: {route}",
                r.name
            );
        }
    }
    let lvs = RunningLvs::start(&lab, &wrr_3_2_1_config("masq", REALS[0], REALS[1])).unwrap();
    lvs.wait_log("balancer attached here too", Duration::from_secs(15))
        .unwrap();
    assert_split_downloads_and_uploads(&lab, &lvs, REALS);
    // Every reply crossed eth1 → eth0 in XDP and was counted there.
    let stats = lvs.status(&["--stats"]).unwrap();
    for vip in vips(&lab) {
        let head = format!("TCP  {vip} ");
        let line = stats
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no line {head:?} in:\n{stats}"));
        let outbytes: u64 = line
            .split_whitespace()
            .nth(6)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no OutBytes in {line:?}"));
        assert!(
            outbytes >= 3 * lab.big_file_size() as u64,
            "{vip}: the replies are counted out:\n{stats}"
        );
    }
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

/// Whether an XDP program is attached to the director's `interface`.
fn xdp_on(lab: &Lab, interface: &str) -> bool {
    let out = wait::succeed(
        lab.command(lab.director_ns(), "ip")
            .args(["link", "show", interface]),
    );
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// The names in the agents' pin directory (instance `default`).
fn pins(lab: &Lab) -> Vec<String> {
    std::fs::read_dir(lab.bpffs().unwrap().join("lvs/default"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The balancer on eth1 is pinned (`link-eth1`) beside the main link: killed, the agent leaves
/// both forwarding (NATed connections still made and answered through the VIP with no agent
/// running); the next agent takes eth1's link over; one with `cleanstop = yes` removes it
/// and detaches the balancer from eth1 too.
#[test]
fn the_inside_link_outlives_the_agent_and_is_taken_over() {
    let (lab, _pass) = two_nic_lab();
    let config = |cleanstop: bool| {
        format!(
            "cleanstop = {cleanstop}\n{}",
            wrr_3_2_1_config("masq", REALS[0], REALS[1])
        )
    };
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let want = big_file_bytes(lab.big_file_size());
    let download = |what: &str| {
        let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
        assert_eq!(status, 200, "{what}");
        assert!(
            body == want,
            "{what}: big.bin altered ({} bytes)",
            body.len()
        );
    };

    let first = RunningLvs::start_file(&lab, "first.toml", &config(false)).unwrap();
    first
        .wait_log("balancer attached here too", Duration::from_secs(15))
        .unwrap();
    first.wait_served(vip, Duration::from_secs(30)).unwrap();
    assert!(
        pins(&lab).contains(&"link-eth1".to_string()),
        "eth1's link pinned: {:?}",
        pins(&lab)
    );
    first.kill();
    assert!(xdp_on(&lab, "eth1"), "the balancer stays on eth1");
    download("with no agent running");

    let second = RunningLvs::start_file(&lab, "second.toml", &config(true)).unwrap();
    second
        .wait_log("adopted the running data plane", Duration::from_secs(15))
        .unwrap();
    second
        .wait_log("balancer attached here too", Duration::from_secs(15))
        .unwrap();
    download("after the takeover");
    assert!(second.stop(), "lvs stops on SIGTERM");
    assert!(
        !pins(&lab).contains(&"link-eth1".to_string()),
        "cleanstop removes eth1's link: {:?}",
        pins(&lab)
    );
    assert!(!xdp_on(&lab, "eth1"), "cleanstop detaches eth1's balancer");
    assert!(!xdp_on(&lab, "eth0"), "and eth0's");
}

/// Namespaces of a test's own, deleted when it ends (passed or failed).
struct OwnNetns(Vec<String>);

impl Drop for OwnNetns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Path MTU discovery through the director (IPVS's `ip_vs_in_icmp`): a client far away,
/// behind a router whose link to it has an MTU of 1280, downloads 16 MiB through the VIP.
/// The real's full-size segments stop at the router, which sends "fragmentation needed" to
/// their source, the VIP; the director translates the error for the real (the quoted
/// segment's source the real's address and port, the outer destination the real), whose
/// stack lowers its path MTU to the client: the download arrives whole, and the real's route
/// to the client shows the MTU. Without the translation the error ends at the director and
/// the download stalls.
#[test]
fn path_mtu_discovery_works_through_the_director() {
    let (lab, _pass) = two_nic_lab();
    let rtr = format!("{}-rtr", lab.prefix());
    let far = format!("{}-far", lab.prefix());
    let _own = OwnNetns(vec![rtr.clone(), far.clone()]);
    for ns in [&rtr, &far] {
        wait::succeed(Command::new("ip").args(["netns", "add", ns]));
    }
    wait::succeed(Command::new("ip").args([
        "-n",
        lab.switch_ns(),
        "link",
        "add",
        "rt0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &rtr,
    ]));
    sh_in(lab.switch_ns(), "ip link set rt0 master br0 up");
    wait::succeed(Command::new("ip").args([
        "-n", &rtr, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", &far,
    ]));
    sh_in(
        &rtr,
        "ip link set lo up
         sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.ip_forward=1
         ethtool -K eth0 tx off > /dev/null
         ethtool -K eth1 tx off > /dev/null
         ip addr add 198.18.0.254/24 dev eth0
         ip link set eth0 up
         ip link set eth1 mtu 1280
         ip addr add 10.77.0.1/24 dev eth1
         ip link set eth1 up",
    );
    sh_in(
        &far,
        "ip link set lo up
         ethtool -K eth0 tx off > /dev/null
         ip addr add 10.77.0.10/24 dev eth0
         ip link set eth0 up
         ip route add default via 10.77.0.1",
    );
    // The director reaches the far client through the router (its neighbour entry made
    // before the replies need it).
    let out = wait::succeed(Command::new("ip").args([
        "netns",
        "exec",
        &rtr,
        "cat",
        "/sys/class/net/eth0/address",
    ]));
    let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
    sh_in(
        lab.director_ns(),
        &format!(
            "ip route add 10.77.0.0/24 via 198.18.0.254
             ip neigh replace 198.18.0.254 lladdr {mac} dev eth0 nud reachable"
        ),
    );

    let lvs = RunningLvs::start(&lab, &wrr_3_2_1_config("masq", REALS[0], REALS[1])).unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    lvs.wait_served(vip, Duration::from_secs(30)).unwrap();
    let want = big_file_bytes(lab.big_file_size());
    for _ in 0..3 {
        let (status, body) = http_get(&far, vip, "/big.bin").unwrap_or_else(|e| {
            panic!(
                "a download to the far client failed: {e}\n{}",
                lvs.status(&["--json"]).unwrap_or_default()
            )
        });
        assert_eq!(status, 200);
        assert!(body == want, "big.bin altered ({} bytes)", body.len());
    }
    // Each real that served learned the path MTU from the translated error.
    let learned = lab
        .reals()
        .iter()
        .filter(|r| {
            let out = wait::succeed(
                lab.command(&r.ns, "ip")
                    .args(["route", "get", "10.77.0.10"]),
            );
            String::from_utf8_lossy(&out.stdout).contains("mtu 1280")
        })
        .count();
    assert!(learned >= 1, "no real learned the path MTU 1280");
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

/// A reload that brings the first NATed real behind eth1 attaches the balancer there then:
/// before it, only eth0 runs it (the config's reals are direct-routed); after it, the
/// NATed service answers through eth1.
#[test]
fn a_reload_that_adds_nated_reals_attaches_to_their_interface() {
    let (lab, _pass) = two_nic_lab();
    let dr_only = "checkinterval = 1\nchecktimeout = 2\n\n[[virtual]]\n\
                   address = \"198.18.0.100:81\"\nchecktype = \"on\"\n\
                   [[virtual.real]]\naddress = \"10.88.0.11:81\"\nmethod = \"gate\"\n";
    let lvs = RunningLvs::start(&lab, dr_only).unwrap();
    lvs.wait_log("balancer attached", Duration::from_secs(15))
        .unwrap();
    assert!(xdp_on(&lab, "eth0"));
    assert!(
        !xdp_on(&lab, "eth1"),
        "no NATed real: eth1 without the balancer"
    );
    std::fs::write(
        lab.work_dir().join("lvs.toml"),
        wrr_3_2_1_config("masq", REALS[0], REALS[1]),
    )
    .unwrap();
    lvs.reload();
    lvs.wait_log("balancer attached here too", Duration::from_secs(15))
        .unwrap();
    assert!(
        xdp_on(&lab, "eth1"),
        "the balancer on eth1 after the reload"
    );
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    lvs.wait_served(vip, Duration::from_secs(30)).unwrap();
    let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
    assert_eq!(status, 200);
    assert!(
        body == big_file_bytes(lab.big_file_size()),
        "big.bin altered"
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

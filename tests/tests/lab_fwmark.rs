//! Firewall-mark services in the namespace lab: the seed chapter's ldirectord.cf (`virtual=3`)
//! runs unchanged on the director, whose iptables (or nftables) rules mark the VIP's traffic;
//! lvs reads those rules, balances the marked ports as one service (persistence covers all of
//! them), follows changes to the rules, and `lvs check` prints what it derived.
//!
//! The seed names its reals 192.168.1.107 and 192.168.1.109: the lab gives real1 and real2
//! those addresses beside their own, and the director an address on that network. Its
//! `logfile="/var/log/ldirectord.log"` is kept: the agent runs in a mount namespace of its
//! own where /var/log is a directory of the lab.

use std::{
    net::SocketAddr, os::unix::process::CommandExt as _, path::Path, process::Command,
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, http_get};
use lvs_tests::{
    agent::{RunningLvs, lvs_binary},
    wait,
};

const SEED: &str = include_str!("../fixtures/seed-ldirectord.cf");

fn lab() -> Lab {
    let lab = Lab::create(LabOptions {
        big_file_size: 4096,
        ..LabOptions::default()
    })
    .expect("lab");
    let dir = lab.director_ifname().to_string();
    sh(
        &lab,
        lab.director_ns(),
        &format!("ip addr add 192.168.1.1/24 dev {dir}"),
    );
    for (i, addr) in [(0, "192.168.1.107"), (1, "192.168.1.109")] {
        let r = &lab.reals()[i];
        sh(&lab, &r.ns, &format!("ip addr add {addr}/24 dev eth0"));
        // A second port of the same service: HTTP on 443 too (plain, as the check is).
        let docroot = lab.work_dir().join(&r.name);
        lab.spawn(
            &r.ns,
            "python3",
            [
                "-m",
                "http.server",
                "443",
                "--bind",
                "::",
                "--directory",
                docroot.to_str().unwrap(),
            ],
        )
        .unwrap();
    }
    lab
}

fn sh(lab: &Lab, ns: &str, script: &str) {
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        wait::succeed(lab.command(ns, words[0]).args(&words[1..]));
    }
}

fn vip(lab: &Lab, port: u16) -> SocketAddr {
    SocketAddr::new(lab.vip_v4().into(), port)
}

/// Starts `lvs run` with `config` (an ldirectord.cf) with /var/log mapped to a lab directory;
/// returns the agent and where its `logfile` lands.
fn start<'a>(lab: &'a Lab, config: &str) -> (RunningLvs<'a>, std::path::PathBuf) {
    let var_log = lab.work_dir().join("var-log");
    std::fs::create_dir_all(&var_log).unwrap();
    let lvs = RunningLvs::start_under(
        lab,
        "ldirectord.cf",
        config,
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /var/log && exec \"$@\"",
            var_log.to_str().unwrap(),
        ],
    )
    .unwrap();
    (lvs, var_log.join("ldirectord.log"))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Who answers `n` new connections to `addr` (`index.html` names the real).
fn answers(lab: &Lab, addr: SocketAddr, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (status, body) = http_get(lab.client_ns(), addr, "/index.html")
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(status, 200, "{addr}");
            String::from_utf8_lossy(&body).trim().to_string()
        })
        .collect()
}

/// The seed's two reals at their weights (`gate 2`, `gate 1`).
fn seed_reals() -> [(SocketAddr, u32); 2] {
    [
        ("192.168.1.107:80".parse().unwrap(), 2),
        ("192.168.1.109:80".parse().unwrap(), 1),
    ]
}

fn served(lab: &Lab, addr: SocketAddr) -> bool {
    matches!(http_get(lab.client_ns(), addr, "/index.html"), Ok((200, _)))
}

fn wait_served(lab: &Lab, addr: SocketAddr, log: &Path) {
    wait::until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        &format!("{addr} served"),
        || served(lab, addr).then_some(()),
        || format!("lvs log:\n{}", read_log(log)),
    );
}

#[test]
fn the_seed_runs_unchanged_with_an_iptables_rule_marking_its_traffic() {
    let lab = lab();
    sh(
        &lab,
        lab.director_ns(),
        &format!(
            "iptables -t mangle -A PREROUTING -d {}/32 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 3",
            lab.vip_v4()
        ),
    );
    let (lvs, log) = start(&lab, SEED);
    for port in [80, 443] {
        wait_served(&lab, vip(&lab, port), &log);
    }
    // wrr 2:1 needs both reals in the data plane (up and their MACs known), not one answering.
    lvs.wait_in_data_plane(vip(&lab, 80), &seed_reals(), Duration::from_secs(20))
        .unwrap();
    // wrr 2:1 over the seed's two reals, on both marked ports.
    for port in [80, 443] {
        let names = answers(&lab, vip(&lab, port), 60);
        let real1 = names.iter().filter(|n| *n == "real1").count();
        let real2 = names.iter().filter(|n| *n == "real2").count();
        assert_eq!(real1 + real2, 60, "{port}: {names:?}");
        assert!(
            real1.abs_diff(40) <= 4,
            "{port}: real1 got {real1} of 60, want 40 ± 4"
        );
    }
    assert!(
        read_log(&log).contains("real server up"),
        "the seed's logfile is written: {}",
        read_log(&log)
    );
    // `ipvsadm -Ln -f 3` lists the mark's service alone; a mark with no service is "No such
    // service", exit 1, as ipvsadm's `list_service` answers.
    let ipvsadm = |args: &[&str]| {
        wait::output(
            Command::new(lvs_binary())
                .arg0("ipvsadm")
                .args(args)
                .env("LVS_CONTROL", &lvs.control),
        )
    };
    let one = ipvsadm(&["-Ln", "-f", "3"]);
    let listed = String::from_utf8_lossy(&one.stdout);
    assert!(
        one.status.success() && listed.lines().any(|l| l.starts_with("FWM  3 wrr")),
        "ipvsadm -Ln -f 3: {listed}{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let none = ipvsadm(&["-Ln", "-f", "4"]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&none.stderr), "No such service\n");
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

#[test]
fn persistence_on_a_mark_covers_all_its_ports() {
    let lab = lab();
    sh(
        &lab,
        lab.director_ns(),
        &format!(
            "iptables -t mangle -A PREROUTING -d {vip}/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 3
             iptables -t mangle -A PREROUTING -d {vip}/32 -p tcp -m tcp --dport 443 -j MARK --set-mark 3",
            vip = lab.vip_v4()
        ),
    );
    let config = SEED.replace("#persistent=600", "persistent=600");
    let (lvs, log) = start(&lab, &config);
    for port in [80, 443] {
        wait_served(&lab, vip(&lab, port), &log);
    }
    // Both reals in the data plane: with one only, staying on it proves nothing.
    lvs.wait_in_data_plane(vip(&lab, 80), &seed_reals(), Duration::from_secs(20))
        .unwrap();
    // HTTP and HTTPS of one client stay on one real, whichever port came first.
    let mut names = Vec::new();
    for _ in 0..10 {
        names.extend(answers(&lab, vip(&lab, 80), 1));
        names.extend(answers(&lab, vip(&lab, 443), 1));
    }
    assert!(
        names.iter().all(|n| *n == names[0]),
        "one client, two ports of one mark, several reals: {names:?}"
    );
    assert!(lvs.stop());
}

#[test]
fn the_agent_follows_the_rules_and_keeps_running_on_a_bad_change() {
    let lab = lab();
    let ipt = |args: &str| {
        sh(
            &lab,
            lab.director_ns(),
            &format!("iptables -t mangle {args}"),
        )
    };
    ipt(&format!(
        "-A PREROUTING -d {}/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 3",
        lab.vip_v4()
    ));
    let (lvs, log) = start(&lab, SEED);
    wait_served(&lab, vip(&lab, 80), &log);
    // 443 is not marked: the director's own stack answers it (nothing listens there).
    assert!(
        !served(&lab, vip(&lab, 443)),
        "443 served before any rule marks it"
    );

    // A rule for 443 appears: the agent picks it up within a few seconds, as a reload.
    ipt(&format!(
        "-A PREROUTING -d {}/32 -p tcp -m tcp --dport 443 -j MARK --set-mark 3",
        lab.vip_v4()
    ));
    wait_served(&lab, vip(&lab, 443), &log);
    assert!(
        read_log(&log).contains("the host's firewall-mark rules changed: reloading"),
        "{}",
        read_log(&log)
    );

    // A rule lvs cannot express: refused by name, the running config stays.
    ipt("-A PREROUTING -s 198.18.0.0/24 -j MARK --set-mark 3");
    wait::until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "the refusal of the source-based rule",
        || {
            read_log(&log)
                .contains("the rule `iptables-save: -A PREROUTING -s 198.18.0.0/24 -j MARK")
                .then_some(())
        },
        || read_log(&log),
    );
    let l = read_log(&log);
    assert!(
        l.contains("the running config stays in force") && l.contains("the source address (-s)"),
        "{l}"
    );
    for port in [80, 443] {
        assert!(served(&lab, vip(&lab, port)), "{port} still served");
    }

    // The bad rule goes, the 443 rule goes: 443 is no longer balanced.
    ipt("-D PREROUTING -s 198.18.0.0/24 -j MARK --set-mark 3");
    ipt(&format!(
        "-D PREROUTING -d {}/32 -p tcp -m tcp --dport 443 -j MARK --set-mark 3",
        lab.vip_v4()
    ));
    wait::until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "443 leaves the service when its rule goes",
        || (!served(&lab, vip(&lab, 443))).then_some(()),
        || read_log(&log),
    );
    assert!(served(&lab, vip(&lab, 80)), "80 still served");
    assert!(lvs.stop());
}

#[test]
fn lvs_check_prints_what_it_derived_from_nftables_and_names_a_missing_mark() {
    let lab = lab();
    let file = lab.work_dir().join("seed.cf");
    std::fs::write(&file, SEED).unwrap();
    let check = || {
        wait::output_within(
            lab.command(lab.director_ns(), lvs_binary().to_str().unwrap())
                .arg("check")
                .arg(&file),
            Duration::from_secs(20),
        )
    };
    // No rule yet: the mark and how to add its rule.
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(":15: virtual: firewall mark 3: no rule of this network namespace sets it")
            && err.contains("-j MARK --set-mark 3"),
        "{err}"
    );
    // An nftables rule marking two ports of the VIP.
    let ns = lab.director_ns();
    sh(
        &lab,
        ns,
        "nft add table ip lvstest
         nft add chain ip lvstest pre { type filter hook prerouting priority mangle ; }",
    );
    wait::succeed(lab.command(ns, "nft").args([
        "add",
        "rule",
        "ip",
        "lvstest",
        "pre",
        "ip",
        "daddr",
        &lab.vip_v4().to_string(),
        "tcp",
        "dport",
        "{",
        "80,",
        "443",
        "}",
        "meta",
        "mark",
        "set",
        "3",
    ]));
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "virtual fwmark 3  ({}:15)\n  marked by this host's rules: tcp {vip}:80, tcp {vip}:443\n",
            file.display(),
            vip = lab.vip_v4()
        )),
        "{text}"
    );
}

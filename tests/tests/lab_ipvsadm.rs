//! `ipvsadm` being lvs (a symlink named ipvsadm to the lvs binary, on PATH), driving a
//! running agent over its control socket: a shell script of ipvsadm commands with variables
//! builds a direct-routing service, traffic splits by its weights, `-e` changes a weight and
//! `-d` removes a real at once, `-S -n` saves the table, an agent restart keeps it, `-R`
//! restores it into a fresh agent; and every file of the corpus's ipvsadm/ directory is
//! replayed: it runs, or is refused for a reason the README lists.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::{
    agent::{RunningLvs, count, lvs_binary},
    wait,
};

/// A directory holding `ipvsadm` → the lvs binary.
struct Bin {
    dir: PathBuf,
}

impl Bin {
    fn new(lab: &Lab) -> Bin {
        let dir = lab.work_dir().join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("ipvsadm");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lvs_binary(), &link).unwrap();
        Bin { dir }
    }

    /// `sh -c SCRIPT` with `ipvsadm` on PATH and the agent's control socket.
    fn sh(&self, control: &Path, script: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        wait::output(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("PATH", path)
                .env("LVS_CONTROL", control),
        )
    }

    /// `ipvsadm ARGS` (through the shell, so that `-R < file` works): standard output, or a
    /// panic with standard error.
    fn ok(&self, control: &Path, args: &str) -> String {
        let out = self.sh(control, &format!("ipvsadm {args}"));
        assert!(
            out.status.success(),
            "ipvsadm {args} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// An agent with no service of its own (its config names only the interface).
fn agent<'a>(lab: &'a Lab, name: &str) -> RunningLvs<'a> {
    let config = format!("interface = \"{}\"\n", lab.director_ifname());
    agent_with(lab, name, &config)
}

/// An agent with `config` (TOML), once its control socket answers.
fn agent_with<'a>(lab: &'a Lab, name: &str, config: &str) -> RunningLvs<'a> {
    let lvs = RunningLvs::start_file(lab, name, config).unwrap();
    wait::until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "the agent's control socket",
        || lvs.status(&[]).ok(),
        || lvs.log(),
    );
    lvs
}

const SCRIPT: &str = r#"
set -e
vip=198.18.0.100
rs1=198.18.0.11
rs2=198.18.0.12
rs3=198.18.0.13
ipvsadm -C
ipvsadm -A -t $vip:80 -s wrr
ipvsadm -a -t $vip:80 -r $rs1:80 -g -w 3
ipvsadm -a -t $vip:80 -r ${rs2}:80 -g -w 2
ipvsadm -a -t $vip:80 -r $rs3 -w 1
"#;

/// Waits until the data plane holds each real at its weight (its MAC found: a real the
/// command just added is reached once its neighbour entry is).
fn in_data_plane(lvs: &RunningLvs, weights: &[(&str, u32)]) {
    let reals: Vec<(SocketAddr, u32)> = weights
        .iter()
        .map(|(r, w)| (r.parse().unwrap(), *w))
        .collect();
    lvs.wait_in_data_plane(
        "198.18.0.100:80".parse().unwrap(),
        &reals,
        Duration::from_secs(15),
    )
    .unwrap();
}

/// The client's source ports: each connection of the test takes the next, so no two share a
/// 5-tuple. Below the kernel's ephemeral range (32768-60999), where the kernel's own choice
/// wraps and comes back to ports used a minute earlier: such a SYN meets the earlier flow's
/// entry, still in FIN_WAIT, and stays on its real without being a new connection, as in
/// IPVS (`conn_reuse_mode` 1 schedules afresh only over TIME_WAIT and CLOSE entries). A test
/// that counts connections must not reuse a 5-tuple.
struct Ports(std::sync::atomic::AtomicU16);

impl Ports {
    fn new() -> Ports {
        Ports(std::sync::atomic::AtomicU16::new(20_000))
    }

    fn next(&self) -> u16 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Conns of the service's row and of each real's in `ipvsadm -Ln --stats` (real → Conns).
fn conns(bin: &Bin, control: &Path) -> (u64, Vec<(String, u64)>) {
    let stats = bin.ok(control, "-Ln --stats");
    let number = |row: &str| -> u64 {
        row.get(33..42)
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Conns in {row:?}:\n{stats}"))
    };
    let service = stats
        .lines()
        .find(|l| l.starts_with("TCP  "))
        .map(number)
        .unwrap_or_else(|| panic!("no service row:\n{stats}"));
    let reals = stats
        .lines()
        .filter(|l| l.starts_with("  -> ") && !l.contains("RemoteAddress"))
        .map(|l| (l[5..33].trim().to_string(), number(l)))
        .collect();
    (service, reals)
}

/// `want` new connections from fresh source ports, split by the weights: each CPU walks the
/// weighted cycle on its own, so each may be off by up to a cycle (6 here) from where it
/// stood. Every connection is a new one for `-Ln --stats`: the service's Conns and each
/// real's grow by exactly what answered.
fn split(lab: &Lab, bin: &Bin, lvs: &RunningLvs, ports: &Ports, want: [usize; 3]) {
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let before = conns(bin, &lvs.control);
    let n: usize = want.iter().sum();
    let names: Vec<String> = (0..n)
        .map(|_| {
            let (status, body) =
                lvs::lab::http_get_from_port(lab.client_ns(), ports.next(), vip, "/index.html")
                    .unwrap();
            assert_eq!(status, 200, "{vip}");
            String::from_utf8_lossy(&body).trim().to_string()
        })
        .collect();
    let after = conns(bin, &lvs.control);
    assert_eq!(
        after.0 - before.0,
        n as u64,
        "the service's Conns: {after:?}"
    );
    for (i, (real, want)) in ["real1", "real2", "real3"]
        .into_iter()
        .zip(want)
        .enumerate()
    {
        let got = count(&names, real);
        assert!(
            got.abs_diff(want) <= 12,
            "{vip}: {real} got {got} of {n}, want {want} ± 12"
        );
        let addr = format!("198.18.0.1{}:80", i + 1);
        let of = |rows: &[(String, u64)]| rows.iter().find(|(a, _)| *a == addr).map(|r| r.1);
        if let Some(now) = of(&after.1) {
            assert_eq!(
                now - of(&before.1).unwrap_or(0),
                got as u64,
                "{addr}'s Conns against the connections it answered: {after:?}"
            );
        }
    }
}

#[test]
fn a_script_of_ipvsadm_commands_drives_the_agent_and_saves_and_restores() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let bin = Bin::new(&lab);
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = agent(&lab, "first.toml");

    let out = bin.sh(&lvs.control, SCRIPT);
    assert!(
        out.status.success(),
        "the script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    in_data_plane(
        &lvs,
        &[
            ("198.18.0.11:80", 3),
            ("198.18.0.12:80", 2),
            ("198.18.0.13:80", 1),
        ],
    );
    let ports = Ports::new();
    split(&lab, &bin, &lvs, &ports, [300, 200, 100]);

    let listed = bin.ok(&lvs.control, "-Ln");
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].starts_with("IP Virtual Server version 1.2.1 (size="),
        "{listed}"
    );
    assert_eq!(
        lines[1], "Prot LocalAddress:Port Scheduler Flags",
        "{listed}"
    );
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    );
    assert_eq!(lines[3], "TCP  198.18.0.100:80 wrr");
    for (line, (real, weight)) in lines[4..].iter().zip([("11", 3), ("12", 2), ("13", 1)]) {
        let want = format!(
            "  -> {:<28} {:<7} {:<6} ",
            format!("198.18.0.{real}:80"),
            "Route",
            weight
        );
        assert!(
            line.starts_with(&want),
            "{line:?} wanted {want:?}\n{listed}"
        );
    }
    // One service: its lines alone; a service that is not there: "No such service", exit 1.
    let one = bin.ok(&lvs.control, "-Ln -t 198.18.0.100:80");
    assert_eq!(
        one.lines().nth(2),
        Some("TCP  198.18.0.100:80 wrr"),
        "{one}"
    );
    assert_eq!(one.lines().count(), 6, "{one}");
    let none = bin.sh(&lvs.control, "ipvsadm -Ln -t 198.18.0.100:81");
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&none.stderr), "No such service\n");
    let stats = bin.ok(&lvs.control, "-Ln --stats");
    assert!(
        stats.contains(
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
        ),
        "{stats}"
    );
    // The service's row: its name in 33 columns, then five numbers of 9 columns each.
    let row = stats
        .lines()
        .find(|l| l.starts_with("TCP  "))
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(row.len(), 33 + 5 * 9, "{row:?}");
    assert_eq!(&row[..33], format!("{:<33}", "TCP  198.18.0.100:80"));
    // -Z: the lists count from now on.
    let service_conns = || conns(&bin, &lvs.control).0;
    bin.ok(&lvs.control, "-Z");
    assert_eq!(service_conns(), 0);
    let none = bin.sh(&lvs.control, "ipvsadm -Z -t 198.18.0.100:81");
    assert_eq!(none.status.code(), Some(255));
    assert_eq!(String::from_utf8_lossy(&none.stderr), "No such service\n");

    // -c: the connection table, in ipvsadm's columns.
    let conns = bin.ok(&lvs.control, "-Lnc");
    let mut lines = conns.lines();
    assert_eq!(lines.next(), Some("IPVS connection entries"));
    assert_eq!(
        lines.next(),
        Some("pro expire state       source             virtual            destination")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 100, "{conns}");
    let client = lab.client_v4().to_string();
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{row:?}");
        assert_eq!(cols[0], "TCP");
        assert!(
            cols[1].len() == 5 && cols[1].as_bytes()[2] == b':',
            "expire mm:ss: {row:?}"
        );
        assert!(cols[3].starts_with(&format!("{client}:")), "{row:?}");
        assert_eq!(cols[4], "198.18.0.100:80");
        assert!(
            ["198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"].contains(&cols[5]),
            "{row:?}"
        );
        // Fixed columns: state from 11, source from 23, virtual from 42, destination from 61.
        assert_eq!(&row[11..23].trim_end(), &cols[2], "{row:?}");
        assert_eq!(&row[42..61].trim_end(), &cols[4], "{row:?}");
        assert_eq!(&row[61..], cols[5], "{row:?}");
    }

    // -e: a weight, at once.
    bin.ok(
        &lvs.control,
        "-e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
    );
    split(&lab, &bin, &lvs, &ports, [150, 300, 150]);
    assert_eq!(service_conns(), 600, "600 new connections since -Z");
    // -d: a real, at once.
    bin.ok(&lvs.control, "-d -t 198.18.0.100:80 -r 198.18.0.13:80");
    split(&lab, &bin, &lvs, &ports, [200, 400, 0]);

    let saved = bin.ok(&lvs.control, "-S -n");
    assert_eq!(
        saved,
        "-A -t 198.18.0.100:80 -s wrr\n\
         -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
         -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 2\n"
    );
    let file = lab.work_dir().join("saved.rules");
    std::fs::write(&file, &saved).unwrap();

    // IPVS's answers, with its exit codes.
    let again = bin.sh(&lvs.control, "ipvsadm -A -t 198.18.0.100:80 -s rr");
    assert_eq!(again.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "Service already exists\n"
    );
    let bad = bin.sh(
        &lvs.control,
        "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.14 -w 70000",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "illegal weight specified\n"
    );
    // A scheduler lvs lacks is refused by the agent, as the kernel refuses one; nothing changed.
    let refused = bin.sh(&lvs.control, "ipvsadm -A -t 198.18.0.100:81 -s nonesuch");
    assert_eq!(refused.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown scheduler `nonesuch`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(bin.ok(&lvs.control, "-S -n"), saved);

    // A restart keeps the command's services (the agent's state file).
    assert!(lvs.stop());
    let lvs = agent(&lab, "first.toml");
    assert_eq!(bin.ok(&lvs.control, "-S -n"), saved, "{}", lvs.log());
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    in_data_plane(&lvs, &[("198.18.0.11:80", 1), ("198.18.0.12:80", 2)]);
    split(&lab, &bin, &lvs, &ports, [200, 400, 0]);
    assert!(lvs.stop());

    // -R into a fresh agent (another control socket: no state of its own).
    let fresh = agent(&lab, "fresh.toml");
    assert_eq!(bin.ok(&fresh.control, "-S -n"), "");
    bin.ok(&fresh.control, &format!("-R < {}", file.display()));
    assert_eq!(bin.ok(&fresh.control, "-S -n"), saved);
    fresh.wait_served(vip, Duration::from_secs(15)).unwrap();
    in_data_plane(&fresh, &[("198.18.0.11:80", 1), ("198.18.0.12:80", 2)]);
    split(&lab, &bin, &fresh, &ports, [200, 400, 0]);
    assert!(fresh.stop());
}

/// The ipvsadm commands of a corpus file, each with its line: the shell variables it sets
/// (`vip=...`) and those its script's environment gave (`$ipv`, the program; `$mypublic_ipaddress`,
/// from a command substitution the excerpt left out) substituted; the program (`ipvsadm`,
/// `./ipvsadm`, `/sbin/ipvsadm`, `sudo ipvsadm`) dropped. ipvsadm-save lines are commands as
/// they are.
fn commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut vars: Vec<(String, String)> = vec![
        ("ipv".into(), "ipvsadm".into()),
        ("mypublic_ipaddress".into(), "198.18.0.100".into()),
    ];
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once('=')
            && !name.starts_with('-')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            vars.push((name.into(), value.into()));
            continue;
        }
        let mut expanded = line.to_string();
        // Longest names first, so that `$rs1` is not read as `$rs` then `1`.
        let mut sorted = vars.clone();
        sorted.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        for (name, value) in &sorted {
            expanded = expanded
                .replace(&format!("${{{name}}}"), value)
                .replace(&format!("${name}"), value);
        }
        let words: Vec<String> = expanded
            .split_whitespace()
            .skip_while(|w| *w == "sudo" || w.ends_with("ipvsadm"))
            .map(String::from)
            .collect();
        out.push((i + 1, words));
    }
    out
}

/// What replaying a corpus file gives.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Every command ran; the table then holds this many services.
    Runs(usize),
    /// The command at this line was refused with a message containing this.
    Refused(usize, &'static str),
}

#[test]
fn every_corpus_file_runs_or_is_refused_for_a_listed_reason() {
    use Outcome::*;
    // The reasons the README's ipvsadm section lists.
    let fnat = "-b on a real server is DPVS's full-NAT";
    let laddr = "--add-laddr is an option of DPVS's ipvsadm";
    let unresolved = "illegal virtual server address[:port] specified";
    // 012 names its VIP `localhost.localdomain:http`: refused where that name does not
    // resolve.
    let resolves = std::net::ToSocketAddrs::to_socket_addrs(&("localhost.localdomain", 80))
        .is_ok_and(|mut a| a.next().is_some());
    let expected: &[(&str, Outcome)] = &[
        ("001.rules", Runs(1)),
        ("002.rules", Runs(1)),
        ("003.rules", Runs(1)),
        ("004.rules", Refused(4, fnat)),
        ("005.rules", Refused(4, fnat)),
        ("006.rules", Runs(1)),
        ("007.rules", Runs(1)),
        ("008.rules", Runs(2)),
        ("009.rules", Runs(1)),
        ("010.rules", Runs(1)),
        ("011.rules", Runs(4)),
        (
            "012.rules",
            if resolves {
                Runs(1)
            } else {
                Refused(1, unresolved)
            },
        ),
        ("013.rules", Runs(6)),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ipvsadm");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rules"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        expected
            .iter()
            .map(|(f, _)| f.to_string())
            .collect::<Vec<_>>(),
        "every corpus file has its expected outcome"
    );

    let lab = Lab::create(LabOptions::default()).expect("lab");
    let bin = Bin::new(&lab);
    let lvs = agent(&lab, "corpus.toml");
    let ipvsadm = bin.dir.join("ipvsadm");
    for (file, want) in expected {
        bin.ok(&lvs.control, "-C");
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut got = None;
        for (line, args) in commands(&text) {
            let out = wait::output(
                Command::new(&ipvsadm)
                    .args(&args)
                    .env("LVS_CONTROL", &lvs.control),
            );
            if !out.status.success() {
                got = Some((line, String::from_utf8_lossy(&out.stderr).into_owned()));
                break;
            }
        }
        match (want, got) {
            (Runs(n), None) => {
                let saved = bin.ok(&lvs.control, "-S -n");
                assert_eq!(
                    saved.lines().filter(|l| l.starts_with("-A ")).count(),
                    *n,
                    "{file}: {saved}"
                );
            }
            (Refused(line, why), Some((at, message))) => {
                assert_eq!(
                    (*line, true),
                    (at, message.contains(why)),
                    "{file}: {message}"
                );
                // Whatever the reason, it is one the README lists.
                assert!(
                    [fnat, laddr, unresolved]
                        .iter()
                        .any(|r| message.contains(r)),
                    "{file}: {message}"
                );
            }
            (want, got) => panic!("{file}: wanted {want:?}, got {got:?}"),
        }
    }
    // DPVS's local addresses, refused for what they are.
    let laddr_line = "--add-laddr -z 192.168.100.200 -t 10.0.0.100:80 -F dpdk0";
    let out = bin.sh(&lvs.control, &format!("ipvsadm {laddr_line}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(laddr));
    assert!(lvs.stop());
}

/// A service of the configuration file belongs to the file: the command refuses to change
/// it (naming the file and line), `-C` leaves it, and a reload that brings a service the
/// command made takes it over (the log says so).
#[test]
fn the_config_files_services_are_the_files() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let bin = Bin::new(&lab);
    let file_service = format!(
        "interface = \"{}\"\n\n[[virtual]]\naddress = \"198.18.0.100:80\"\nscheduler = \"rr\"\n\
         checktype = \"on\"\n[[virtual.real]]\naddress = \"198.18.0.11:80\"\n",
        lab.director_ifname()
    );
    let lvs = agent_with(&lab, "owned.toml", &file_service);
    for args in [
        "-a -t 198.18.0.100:80 -r 198.18.0.12",
        "-e -t 198.18.0.100:80 -r 198.18.0.11 -w 5",
        "-D -t 198.18.0.100:80",
    ] {
        let out = bin.sh(&lvs.control, &format!("ipvsadm {args}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args}: {err}");
        assert!(
            err.contains("TCP 198.18.0.100:80 is a service of the configuration file")
                && err.contains("owned.toml:4"),
            "{args}: {err}"
        );
    }
    bin.ok(&lvs.control, "-A -t 198.18.0.100:8080 -s rr");
    bin.ok(&lvs.control, "-a -t 198.18.0.100:8080 -r 198.18.0.12");
    assert_eq!(
        bin.ok(&lvs.control, "-S -n"),
        "-A -t 198.18.0.100:80 -s rr\n\
         -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
         -A -t 198.18.0.100:8080 -s rr\n\
         -a -t 198.18.0.100:8080 -r 198.18.0.12:8080 -g -w 1\n"
    );
    // -C clears the command's service only, and says the file's stay.
    let out = bin.sh(&lvs.control, "ipvsadm -C");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("service(s) of the configuration file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        bin.ok(&lvs.control, "-S -n"),
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n"
    );
    // -R of what -S saved (the file's service too, as ipvsadm-save saves every service): the
    // file's lines are left to the file, with a note, and the command's service comes back, as
    // ipvsadm -R goes on past the kernel's "Service already exists".
    let saved = lab.work_dir().join("saved.rules");
    std::fs::write(
        &saved,
        "-A -t 198.18.0.100:80 -s rr\n\
         -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
         -A -t 198.18.0.100:8080 -s rr\n\
         -a -t 198.18.0.100:8080 -r 198.18.0.12:8080 -g -w 1\n",
    )
    .unwrap();
    let out = bin.sh(&lvs.control, &format!("ipvsadm -R < {}", saved.display()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("is a service of the configuration file")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("owned.toml:4"), "{err}");
    assert_eq!(
        bin.ok(&lvs.control, "-S -n"),
        std::fs::read_to_string(&saved).unwrap()
    );
    bin.ok(&lvs.control, "-C");
    // A reload that brings the command's service: the file's takes it over.
    bin.ok(&lvs.control, "-A -t 198.18.0.100:8080 -s wrr");
    std::fs::write(
        &lvs.config,
        format!(
            "{file_service}\n[[virtual]]\naddress = \"198.18.0.100:8080\"\nscheduler = \"rr\"\n\
             checktype = \"on\"\n[[virtual.real]]\naddress = \"198.18.0.13:8080\"\n"
        ),
    )
    .unwrap();
    lvs.reload();
    lvs.wait_log("the file's takes it over", Duration::from_secs(15))
        .unwrap();
    wait::until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        "the reloaded table",
        || {
            let saved = bin.ok(&lvs.control, "-S -n");
            saved
                .contains("-a -t 198.18.0.100:8080 -r 198.18.0.13:8080 -g -w 1\n")
                .then_some(())
        },
        || bin.ok(&lvs.control, "-S -n"),
    );
    // The state file no longer has it: a restart does not bring it back beside the file's.
    let out = bin.sh(
        &lvs.control,
        "ipvsadm -a -t 198.18.0.100:8080 -r 198.18.0.12",
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(lvs.stop());
}

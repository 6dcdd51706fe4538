//! A start that fails leaves nothing behind: no pinned maps, no link, no instance directory;
//! and its message says what is wrong (the interface, and what holds it).

use std::{path::Path, process::ExitStatus, time::Duration};

use aya::programs::{Xdp, XdpMode};
use lvs::lab::{Lab, LabOptions, run_in_netns};
use lvs_tests::{agent::lvs_binary, wait::output_within};

fn config(interface: &str) -> String {
    format!(
        r#"
checkinterval = 1
checktimeout = 1
interface = "{interface}"

[[virtual]]
address = "198.18.0.100:80"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
"#
    )
}

/// `lvs run` with `config` on the lab's director, to its end (killed after 15 s, then a
/// failure): its exit status and standard error.
fn run_lvs(lab: &Lab, config: &str) -> (ExitStatus, String) {
    let path = lab.work_dir().join("failed-start.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = lab.command(lab.director_ns(), lvs_binary().to_str().unwrap());
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--bpffs")
        .arg(lab.bpffs().unwrap())
        .arg("--control")
        .arg(lab.work_dir().join("run-lvs/failed-start.sock"));
    let out = output_within(&mut cmd, Duration::from_secs(15));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that nothing of lvs is left under the lab's bpffs (`lvs/`, the instances' parent,
/// may stay, empty).
fn assert_no_pins(bpffs: &Path) {
    let left: Vec<String> = walk(&bpffs.join("lvs"));
    assert!(left.is_empty(), "left behind in the bpffs: {left:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// `ip link show eth0` in the director (it shows an attached XDP program).
fn director_has_xdp(lab: &Lab) -> String {
    let out = lab
        .command(lab.director_ns(), "ip")
        .args(["link", "show", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_start_on_a_missing_interface_fails_clearly_and_leaves_no_pins() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let bpffs = lab.bpffs().unwrap();
    let (status, stderr) = run_lvs(&lab, &config("nosuch0"));
    assert!(!status.success(), "refused: {stderr}");
    assert_no_pins(&bpffs);
    assert!(
        stderr.contains("interface nosuch0 does not exist (interfaces here: lo, eth0)"),
        "{stderr}"
    );
}

#[test]
fn a_start_where_another_xdp_program_is_attached_names_it_and_leaves_no_pins() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 10,
        ..LabOptions::default()
    })
    .unwrap();
    let bpffs = lab.bpffs().unwrap();
    // Something else's XDP program on the director's eth0 (generic mode), held by this test.
    let other = run_in_netns(lab.director_ns(), || {
        let mut ebpf = aya::Ebpf::load(lvs::dataplane::object::EBPF_OBJECT).unwrap();
        let prog: &mut Xdp = ebpf
            .program_mut(lvs_common::limits::program_names::PASS)
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        prog.attach("eth0", XdpMode::Skb).unwrap();
        ebpf
    })
    .unwrap();
    assert!(director_has_xdp(&lab).contains("xdpgeneric"));

    let (status, stderr) = run_lvs(&lab, &config("eth0"));
    assert!(!status.success(), "refused: {stderr}");
    assert_no_pins(&bpffs);
    assert!(
        stderr.contains("attaching to eth0: XDP program lvs_pass (id ")
            && stderr.contains("generic mode) is already attached there by something else"),
        "{stderr}"
    );
    // The other program is still there, untouched.
    assert!(director_has_xdp(&lab).contains("xdpgeneric"));
    drop(other);
}

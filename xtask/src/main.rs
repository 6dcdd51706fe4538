//! Project tasks. This crate builds with stable Rust and nothing else, so it can install what
//! the rest of the workspace needs before building it:
//!
//! - `cargo xtask setup`: the nightly toolchain's `rust-src`, `bpf-linker` 0.9.13, and the
//!   Debian packages the lab uses (iproute2, ethtool, curl, python3, bpftool,
//!   keepalived, bird2). Idempotent.
//! - `cargo xtask demo`: set-up, then the demo lab (`lvs demo`).
//! - `cargo xtask test`: set-up, then every test, each test binary under a deadline
//!   ([`harness`]).
//! - `cargo xtask bench`: set-up, then the benchmarks, and the ECMP and VRRP labs for their
//!   broken-connection figures (`mh` beside `wrr`).
//! - `cargo xtask fuzz`: set-up, then the packet fuzzing test with 1,000,000 frames
//!   (`LVS_FUZZ_FRAMES` and `LVS_FUZZ_SEED` change the count and the seed).
//! - `cargo xtask run -- ARGS`: set-up, then `lvs ARGS` (release build).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod harness;

#[derive(Parser)]
#[command(about = "lvs project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent).
    Setup,
    /// Run the demo lab: namespaces, lvs on the director, traffic through the VIP.
    Demo,
    /// Run every test, each test binary under a deadline.
    Test {
        /// Arguments for every test binary (a name filter, `--nocapture`, ...).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks.
    Bench,
    /// Run the packet fuzzing test with a million frames (or LVS_FUZZ_FRAMES).
    Fuzz,
    /// Build a release and package it in target/dist: the binary, the `ipvsadm` symlink to it,
    /// shell completions and the man page (generated from the CLI definitions), and the
    /// systemd unit.
    Dist,
    /// Build and run the lvs binary with ARGS.
    Run {
        /// Arguments for lvs.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

const BPF_LINKER_VERSION: &str = "0.9.13";
/// The benchmarks `cargo xtask bench` runs, in order (binaries of the tests crate).
const BENCHES: &[&str] = &[
    "lvs-bench",
    "lvs-window-bench",
    "lvs-live-bench",
    "lvs-failover-bench",
    "lvs-scale-bench",
    "lvs-maglev-bench",
];
/// Commands the lab needs, and the Debian package that has each.
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ethtool", "ethtool"),
    ("curl", "curl"),
    ("python3", "python3"),
    ("bpftool", "bpftool"),
    // The VRRP lab (tests/tests/lab_vrrp.rs). Debian's unit does not start it without a
    // /etc/keepalived/keepalived.conf. (Installing bird2 starts Debian's bird.service with its
    // default config, which speaks no BGP; the labs run their own in namespaces.)
    ("keepalived", "keepalived"),
    // The ECMP lab (tests/tests/lab_ecmp.rs): BGP on the router and the directors.
    ("bird", "bird2"),
    // Firewall-mark services (tests/tests/lab_fwmark.rs): the host's mark rules.
    ("iptables-save", "iptables"),
    ("nft", "nftables"),
    // The pgsql check against a real server (lvs-userspace/src/health/sql_tests.rs): Debian's
    // PostgreSQL, whose pg_ctlcluster comes with the server (not with the client alone).
    ("pg_ctlcluster", "postgresql"),
];

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    setup()?;
    match cli.task {
        Task::Setup => Ok(()),
        Task::Demo => {
            cargo(&root, &["build", "--release", "--bin", "lvs"])?;
            run(Command::new(root.join("target/release/lvs")).arg("demo"))
        }
        Task::Test { args } => {
            // The lab tests run the lvs binary as an operator would.
            cargo(&root, &["build", "--bin", "lvs"])?;
            harness::run_all(&root, &args)
        }
        Task::Bench => {
            cargo(&root, &["build", "--release", "--bin", "lvs"])?;
            // SAFETY: single-threaded here; the benchmarks find the binary through it.
            unsafe { std::env::set_var("LVS_BIN", root.join("target/release/lvs")) };
            for bench in BENCHES {
                cargo(
                    &root,
                    &["run", "--release", "-q", "-p", "lvs-tests", "--bin", bench],
                )?;
            }
            // The multi-director labs print their broken connections, mh beside wrr.
            cargo(
                &root,
                &[
                    "test",
                    "--release",
                    "-q",
                    "-p",
                    "lvs-tests",
                    "--test",
                    "lab_ecmp",
                    "--test",
                    "lab_vrrp",
                    "--",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ],
            )
            .context("the ECMP and VRRP labs")
        }
        Task::Fuzz => {
            if std::env::var_os("LVS_FUZZ_FRAMES").is_none() {
                // SAFETY: single-threaded here; the test reads it.
                unsafe { std::env::set_var("LVS_FUZZ_FRAMES", "1000000") };
            }
            cargo(
                &root,
                &[
                    "test",
                    "-p",
                    "lvs-tests",
                    "--test",
                    "fuzz",
                    "--",
                    "--nocapture",
                ],
            )
        }
        Task::Dist => dist(&root),
        Task::Run { args } => {
            cargo(&root, &["build", "--release", "--bin", "lvs"])?;
            run(Command::new(root.join("target/release/lvs")).args(args))
        }
    }
}

fn dist(root: &Path) -> Result<()> {
    cargo(root, &["build", "--release", "--bin", "lvs"])?;
    let bin = root.join("target/release/lvs");
    let dist = root.join("target/dist");
    std::fs::create_dir_all(dist.join("completions"))?;
    std::fs::copy(&bin, dist.join("lvs"))?;
    // `ipvsadm` is lvs called by that name (as busybox's applets): install the link beside it.
    let link = dist.join("ipvsadm");
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)?;
    }
    std::os::unix::fs::symlink("lvs", &link)?;
    std::fs::copy(root.join("packaging/lvs.service"), dist.join("lvs.service"))?;
    let generated = |args: &[&str], file: PathBuf| -> Result<()> {
        let out = Command::new(&bin).args(args).output()?;
        if !out.status.success() {
            bail!("lvs {args:?} failed");
        }
        std::fs::write(file, out.stdout)?;
        Ok(())
    };
    generated(&["man"], dist.join("lvs.1"))?;
    for (shell, file) in [("bash", "lvs.bash"), ("zsh", "_lvs"), ("fish", "lvs.fish")] {
        generated(&["completions", shell], dist.join("completions").join(file))?;
    }
    eprintln!("xtask: packaged in {}", dist.display());
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(args),
    )
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Installs what is missing, and nothing that is there already.
fn setup() -> Result<()> {
    if !output(Command::new("rustup").args(["toolchain", "list"])).contains("nightly") {
        eprintln!("xtask: installing the nightly toolchain");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]));
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !output(Command::new("bpf-linker").arg("--version")).contains(BPF_LINKER_VERSION) {
        eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION}");
        run(Command::new("cargo").args([
            "+nightly",
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--locked",
        ]))?;
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(cmd, _)| !succeeds(Command::new("sh").args(["-c", &format!("command -v {cmd}")])))
        .map(|&(_, pkg)| pkg)
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing Debian packages {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))?;
    }
    Ok(())
}

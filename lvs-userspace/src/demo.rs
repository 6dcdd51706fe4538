//! `lvs demo`: the whole thing in one command, on this machine only. It builds the lab (a
//! client, a director and three real servers in network namespaces, on a bridge), runs
//! `lvs run` on the director with the embedded config [`DEMO_CONFIG`], sends HTTP requests over
//! new connections to the VIP from the client, and prints which real server answered how often.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::lab::{Lab, LabOptions, http_get};

/// The demo's config, embedded in the binary.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// Builds the lab, runs lvs in it, sends `requests` connections through each VIP, prints the
/// split, and removes everything.
pub fn run(requests: usize) -> Result<()> {
    println!("lvs demo: building the lab (client, director, 3 real servers, a bridge)");
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .context("building the lab")?;
    let config = lab.work_dir().join("lvs.toml");
    std::fs::write(&config, DEMO_CONFIG).context("writing the demo config")?;
    let exe = std::env::current_exe().context("finding the lvs binary")?;
    let exe = exe.to_str().context("lvs binary path is not UTF-8")?;
    let log = lab.work_dir().join("lvs.log");
    let bpffs = lab.bpffs().context("mounting the lab's bpffs")?;
    let pid = lab
        .spawn_logged(
            lab.director_ns(),
            exe,
            [
                "run",
                "--config",
                config.to_str().context("config path")?,
                "--bpffs",
                bpffs.to_str().context("bpffs path")?,
            ],
            &log,
        )
        .context("starting lvs on the director")?;
    println!(
        "lvs demo: lvs runs on the director ({}), log in {}",
        lab.director_ns(),
        log.display()
    );

    let result = (|| {
        for vip in [
            SocketAddr::new(lab.vip_v4().into(), 80),
            SocketAddr::new(lab.vip_v6().into(), 80),
        ] {
            wait_until_served(&lab, vip)?;
            let split = split(&lab, vip, requests)?;
            println!("\n{requests} new HTTP connections to {vip} (weights 3:2:1):");
            for (real, n) in &split {
                println!(
                    "  {real:<8} {n:>5}  {:>5.1}%",
                    *n as f64 * 100.0 / requests as f64
                );
            }
        }
        Ok(())
    })();
    // SIGTERM: lvs detaches cleanly.
    if !lab.terminate(pid, Duration::from_secs(5)) {
        eprintln!("lvs demo: lvs did not stop on SIGTERM within 5 s");
    }
    if result.is_err()
        && let Ok(text) = std::fs::read_to_string(&log)
    {
        eprintln!("--- lvs log ---\n{text}");
    }
    drop(lab);
    println!("\nlvs demo: lab removed");
    result
}

/// Waits until the VIP answers (the first health checks have passed).
fn wait_until_served(lab: &Lab, vip: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http_get(lab.client_ns(), vip, "/index.html") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{vip} did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `n` requests over new connections and counts the answering reals.
pub fn split(lab: &Lab, vip: SocketAddr, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let (status, body) = http_get(lab.client_ns(), vip, "/index.html")?;
        if status != 200 {
            bail!("{vip} answered {status}");
        }
        *counts
            .entry(String::from_utf8_lossy(&body).trim().to_string())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

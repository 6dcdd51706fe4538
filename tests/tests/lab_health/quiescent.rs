//! A failed real's established flows: kept with `quiescent`, cut by removal, while new
//! connections avoid it.

use std::{
    io::ErrorKind,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, big_file_bytes};
use lvs_tests::agent::RunningLvs;

use super::common::*;
use super::download::*;

/// Runs lvs with `quiescent`, starts a download, fails the serving real's check (its
/// `health.html` goes) without stopping its server, checks that new connections avoid it,
/// then finishes the download. Returns the download's outcome, and when the agent had written
/// the real's new weight into the tables.
fn download_across_a_failed_check(lab: &Lab, quiescent: bool) -> (Result<Vec<u8>, Cut>, Instant) {
    for r in lab.reals() {
        std::fs::write(lab.work_dir().join(&r.name).join("health.html"), "ok\n").unwrap();
    }
    let vip = vip4(lab);
    let keys = "checktype = \"negotiate\"\nservice = \"http\"\nrequest = \"/health.html\"";
    let lvs = RunningLvs::start_file(
        lab,
        &format!("quiescent-{quiescent}.toml"),
        &config(
            lab,
            &format!("quiescent = {quiescent}"),
            vip,
            keys,
            &[0, 1, 2],
        ),
    )
    .unwrap();
    wait_all_answer(
        lab,
        &lvs,
        vip,
        &["real1", "real2", "real3"],
        Duration::from_secs(15),
    );

    let download = PausedDownload::start(lab, vip);
    let victim = serving_real(lab, download.port);
    let name = lab.reals()[victim].name.clone();
    std::fs::remove_file(lab.work_dir().join(&name).join("health.html")).unwrap();
    let t0 = Instant::now();
    let down = real_addr(lab, victim, false);
    while transitions(&lvs.log(), down, Some("down")) == 0 {
        assert!(
            t0.elapsed() <= bound(),
            "quiescent={quiescent}: {name} not down within {:?}; lvs log:\n{}",
            bound(),
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The tables written: at weight 0 (quiescent) or out.
    lvs.wait_real_weight(
        down,
        if quiescent { "0" } else { "-" },
        Duration::from_secs(2),
    )
    .unwrap();
    let written = Instant::now();
    let others: Vec<&str> = ["real1", "real2", "real3"]
        .into_iter()
        .filter(|n| *n != name)
        .collect();
    all_from(lab, &lvs, vip, 30, &others);
    let outcome = download.finish();
    assert!(lvs.stop());
    // The next run starts with every real healthy again.
    std::fs::write(lab.work_dir().join(&name).join("health.html"), "ok\n").unwrap();
    (outcome, written)
}

#[test]
fn quiescent_keeps_established_flows_of_a_failed_real_and_removal_cuts_them() {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab");
    let want = big_file_bytes(lab.big_file_size());

    let (kept, _) = download_across_a_failed_check(&lab, true);
    match &kept {
        Ok(body) => assert!(
            body == &want,
            "quiescent: the download arrived altered ({} bytes of {})",
            body.len(),
            want.len()
        ),
        Err(e) => panic!("quiescent: the download was cut: {e}"),
    }

    // Without quiescent the flow's next packets go to another real, which knows nothing of
    // it and resets it: the client sees a reset soon after the removal (the download resumes
    // within about a second of it), long before its own read timeout.
    let (cut, removed) = download_across_a_failed_check(&lab, false);
    match cut {
        Ok(body) => panic!(
            "without quiescent the failed real's download should have been reset, but {} \
             bytes arrived{}",
            body.len(),
            if body == want { " (all of it)" } else { "" }
        ),
        Err(cut) => {
            let after = cut.at.saturating_duration_since(removed);
            eprintln!("without quiescent: cut {after:?} after the removal: {cut}");
            assert!(
                cut.kind == ErrorKind::ConnectionReset && after <= Duration::from_secs(5),
                "without quiescent the download should end in a reset within 5 s of the \
                 removal; it ended {after:?} after it with {cut} (a read timeout of the \
                 client is {DOWNLOAD_READ_TIMEOUT:?})"
            );
        }
    }
}

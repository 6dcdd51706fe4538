//! Waits with a deadline: every wait of these tests on a child process, a thread or a
//! condition ends in bounded time, and one that runs out fails the test with a message naming
//! what it waited for (a hung test would otherwise hold the whole run).

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How long a short command (`ip`, `ss`, `tc`, `bpftool`, `lvs status`…) may take.
pub const COMMAND: Duration = Duration::from_secs(20);

/// Runs `cmd` to its end, its output captured, and returns its output; if it has not exited
/// within `within`, kills its process group and panics naming the command. It runs in a
/// process group of its own (so that what it started dies with it) with no standard input.
pub fn output_within(cmd: &mut Command, within: Duration) -> Output {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let what = format!("{cmd:?}");
    let file = |stream: &str| -> (PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "lvs_tests_{}_{}.{stream}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let f = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("creating {} for {what}: {e}", path.display()));
        (path, f)
    };
    let (out_path, out) = file("out");
    let (err_path, err) = file("err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let deadline = Instant::now() + within;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => break Err(()),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    let read = |p: &PathBuf| {
        let bytes = std::fs::read(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        bytes
    };
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    match status {
        Ok(status) => Output {
            status,
            stdout,
            stderr,
        },
        Err(()) => {
            // SAFETY: kill(2) on the process group the child leads (process_group(0) above).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not exit within {within:?} (killed); it wrote:\n{}\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            )
        }
    }
}

/// [`output_within`] with the [`COMMAND`] deadline.
pub fn output(cmd: &mut Command) -> Output {
    output_within(cmd, COMMAND)
}

/// Runs `cmd` with [`output`] and returns its output; panics with its standard error if it
/// failed.
pub fn succeed(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The exit status of `cmd` run with [`output`].
pub fn status(cmd: &mut Command) -> ExitStatus {
    output(cmd).status
}

/// Joins `handle` if its thread ends within `within`; else panics saying `what` did not end
/// (the thread is left behind, blocked in whatever it waits on). A panic of the thread is
/// resumed here.
pub fn join_within<T>(handle: JoinHandle<T>, within: Duration, what: &str) -> T {
    let deadline = Instant::now() + within;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what}: still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Polls `probe` every `every` until it returns `Some`, and returns that; panics after
/// `within` with `what` and the last thing `describe` says about the state.
pub fn until<T>(
    within: Duration,
    every: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {within:?}; {}", describe());
        }
        std::thread::sleep(every);
    }
}

/// Waits up to `within` for `child` to exit; kills it and panics naming `what` if it does not.
pub fn exit_within(child: &mut std::process::Child, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not exit within {within:?} (killed)");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

//! The command line as a pipeline sees it: output into a pipe whose reader is gone
//! (`lvs check … | head`) ends quietly, and a bad `--instance` is refused before anything runs.
//! No lab: `lvs status` asks a stand-in agent on a Unix socket.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixListener,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use lvs::{
    agent::snapshot::{AgentCounters, Snapshot},
    control::Response,
};
use lvs_tests::agent::lvs_binary;

/// A scratch directory for this test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("lvs-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with its standard output a pipe whose read end is already closed (every write
/// fails with EPIPE), to its end within 10 s: its exit status and standard error.
fn run_into_closed_pipe(cmd: Command) -> (ExitStatus, String) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    run_within_10s(cmd, Stdio::from(write))
}

/// Runs `cmd` with `stdout`, to its end within 10 s: its exit status and standard error.
fn run_within_10s(mut cmd: Command, stdout: Stdio) -> (ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lvs");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (status, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lvs did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_into_a_closed_pipe_ends_quietly() {
    let dir = Scratch::new("check");
    let config = dir.0.join("lvs.cf");
    std::fs::write(&config, "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n").unwrap();
    let mut cmd = Command::new(lvs_binary());
    cmd.arg("check").arg(&config);
    let (status, stderr) = run_into_closed_pipe(cmd);
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{status}: {stderr}"
    );
}

#[test]
fn status_json_into_a_closed_pipe_ends_quietly() {
    let dir = Scratch::new("status");
    let sock = dir.0.join("lvs.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // A stand-in agent answering one status request. It is not joined: if lvs never asks, the
    // deadline on lvs fails the test and the thread ends with the process.
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        let answer = Response {
            ok: true,
            error: None,
            snapshot: Some(Snapshot {
                version: "test".into(),
                conn_table_size: 1,
                taken_unix_ms: 0,
                conn_table_entries: 0,
                services: Vec::new(),
                drops: BTreeMap::new(),
                agent: AgentCounters::default(),
            }),
            ipvsadm: None,
        };
        let mut out = serde_json::to_vec(&answer).unwrap();
        out.push(b'\n');
        (&stream).write_all(&out).unwrap();
    });
    let mut cmd = Command::new(lvs_binary());
    cmd.arg("status").arg("--json").arg("--control").arg(&sock);
    let (status, stderr) = run_into_closed_pipe(cmd);
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{status}: {stderr}"
    );
}

#[test]
fn an_instance_name_that_leaves_the_pin_directory_is_refused() {
    for bad in ["", ".", "..", "../..", "/etc/lvs", "a/b"] {
        let mut cmd = Command::new(lvs_binary());
        cmd.args(["run", "--config", "/nonexistent.cf", "--instance", bad]);
        let (status, stderr) = run_within_10s(cmd, Stdio::null());
        assert!(
            !status.success()
                && stderr.contains("invalid value")
                && stderr.contains("an instance name is made of letters, digits"),
            "--instance {bad:?}: {stderr}"
        );
    }
}

/// `lvs check` reads addresses strictly (an inet_aton form is refused with file:line, without
/// asking the resolver) and says which names it resolved.
#[test]
fn check_reads_addresses_strictly_and_says_what_it_resolved() {
    let dir = Scratch::new("strict");
    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "[[virtual]]\naddress = \"010.212.0.100:80\"\n[[virtual.real]]\naddress = \"10.0.0.2:80\"\n",
    )
    .unwrap();
    let out = Command::new(lvs_binary())
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:2: virtual: `010.212.0.100` is not a valid address",
            bad.display()
        )),
        "{stderr}"
    );
    let named = dir.0.join("named.cf");
    std::fs::write(&named, "virtual=10.0.0.1:80\n\treal=localhost:80 gate\n").unwrap();
    let out = Command::new(lvs_binary())
        .arg("check")
        .arg(&named)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "name: {}:2: real localhost: resolved to 127.0.0.1 (a host name",
            named.display()
        )),
        "{stdout}"
    );
}

/// A user who may not use the control socket (it is root's, mode 0600) is told so, not asked
/// whether the agent runs.
#[test]
fn status_as_a_user_who_may_not_ask_says_permission_denied() {
    use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};
    let dir = Scratch::new("perm");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.0.join("lvs.sock");
    // An agent answers there, as root, for root only.
    let _listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new(lvs_binary());
    cmd.arg("status").arg("--control").arg(&sock);
    // nobody.
    cmd.uid(65534).gid(65534);
    let (status, stderr) = run_within_10s(cmd, Stdio::null());
    assert!(!status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "lvs: permission denied on the control socket {}: run as root",
            sock.display()
        )
    );
}

/// `lvs CMD ARGS...` to its end within 10 s: its exit status, standard output and error.
fn lvs_output(args: &[&std::ffi::OsStr]) -> (ExitStatus, String, String) {
    let out_path = Scratch::new("out");
    let out_file = out_path.0.join("stdout");
    let f = std::fs::File::create(&out_file).unwrap();
    let mut cmd = Command::new(lvs_binary());
    cmd.args(args);
    let (status, stderr) = run_within_10s(cmd, Stdio::from(f));
    (status, std::fs::read_to_string(&out_file).unwrap(), stderr)
}

#[test]
fn the_format_is_told_by_the_content_or_by_format() {
    let dir = Scratch::new("format");
    let ka = dir.0.join("keepalived.conf");
    std::fs::write(
        &ka,
        "! keepalived\nvrrp_instance V {\n}\nvirtual_server 10.0.0.1 80 {\n  lb_algo rr\n  \
         lb_kind DR\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
    )
    .unwrap();
    let (status, out, err) = lvs_output(&["check".as_ref(), ka.as_os_str()]);
    assert!(status.success(), "{status}: {err}");
    assert!(out.contains("virtual tcp 10.0.0.1:80"), "{out}");
    assert!(
        out.contains("non-LVS block(s) skipped (vrrp_instance)"),
        "{out}"
    );
    let (status, out, err) = lvs_output(&["convert".as_ref(), ka.as_os_str()]);
    assert!(
        status.success() && out.contains("checktype = \"connect\""),
        "{status}: {out}{err}"
    );
    // Told it is ldirectord.cf, the same file fails as such.
    let (status, _, err) = lvs_output(&[
        "check".as_ref(),
        "--format".as_ref(),
        "ldirectord".as_ref(),
        ka.as_os_str(),
    ]);
    assert!(
        !status.success() && err.contains("expected key=value"),
        "{status}: {err}"
    );
    // ipvsadm rules (ipvsadm-save output) are told by their content; nothing is checked.
    let rules = dir.0.join("rules");
    std::fs::write(&rules, "-A -t 10.0.0.1:80 -s rr\n").unwrap();
    let (status, out, err) = lvs_output(&["check".as_ref(), rules.as_os_str()]);
    assert!(
        status.success()
            && out.contains("virtual tcp 10.0.0.1:80")
            && out.contains("nothing is health-checked"),
        "{status}: {out}{err}"
    );
    // A file in no format: the error names those lvs reads.
    let script = dir.0.join("script");
    std::fs::write(&script, "sudo ipvsadm -A -t 10.0.0.1:80 -s rr\n").unwrap();
    let (status, _, err) = lvs_output(&["check".as_ref(), script.as_os_str()]);
    assert!(
        !status.success()
            && err.contains(":1: cannot tell the configuration's format")
            && err.contains("--format toml|ldirectord|keepalived|ipvsadm"),
        "{status}: {err}"
    );
}

//! The `ipvsadm` command: reads its command line ([`super::args`]), sends changes to the
//! running agent over the control socket and prints what ipvsadm prints ([`super::output`]).
//!
//! The control socket is `$LVS_CONTROL`, or [`crate::control::DEFAULT_SOCKET`]. Exit codes
//! are ipvsadm's: 0, 2 for a command line it refuses (and when the agent cannot be reached,
//! as ipvsadm when IPVS cannot be), 255 (its -1) for a change the table refuses and for
//! "Try `ipvsadm -h'".

use std::{
    io::{BufRead, Write as _},
    path::{Path, PathBuf},
};

use super::{
    args::{self, ArgError, Command, Invocation, ServiceArg},
    output::{self, Format},
    rules::{Change, Key},
};
use crate::control::{self, ChangeError, ControlError, ZeroScope};

/// The control socket the command talks to.
pub fn control_path() -> PathBuf {
    std::env::var_os("LVS_CONTROL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_SOCKET))
}

/// What a run printed and its exit code.
struct Out {
    stdout: String,
    stderr: String,
    code: u8,
}

impl Out {
    fn ok(stdout: String) -> Out {
        Out {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    fn err(stderr: String, code: u8) -> Out {
        Out {
            stdout: String::new(),
            stderr,
            code,
        }
    }
}

/// Runs ipvsadm with `args` (without the program name) against the agent at `control`,
/// reading `-R`'s rules from standard input; prints and returns the exit code.
pub fn run(program: &str, args: &[String], control: &Path) -> u8 {
    let out = run_to(program, args, control, &mut std::io::stdin().lock());
    let mut so = std::io::stdout().lock();
    // A reader that went away (`ipvsadm -Ln | head`) is no error.
    let _ = so
        .write_all(out.stdout.as_bytes())
        .and_then(|()| so.flush());
    if !out.stderr.is_empty() {
        let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    }
    out.code
}

fn try_help(program: &str, message: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(m) = message {
        s.push_str(&format!("{program}: {m}\n"));
    }
    s.push_str(&format!(
        "Try `{program} -h' or '{program} --help' for more information.\n"
    ));
    s
}

fn arg_error(program: &str, e: &ArgError) -> Out {
    match e {
        ArgError::Fail { message } => Out::err(format!("{message}\n"), e.exit_code()),
        ArgError::TryHelp { message } => {
            Out::err(try_help(program, message.as_deref()), e.exit_code())
        }
    }
}

fn unreachable(e: &ControlError) -> Out {
    Out::err(
        format!(
            "Can't initialize ipvs: {e}\nIs the lvs agent running (lvs run), with its control \
             socket there (LVS_CONTROL)?\n"
        ),
        2,
    )
}

fn change_error(e: ChangeError, line: Option<usize>) -> Out {
    match e {
        ChangeError::Control(c) => unreachable(&c),
        ChangeError::Refused { message, .. } => Out::err(
            match line {
                Some(n) => format!("line {n}: {message}\n"),
                None => format!("{message}\n"),
            },
            255,
        ),
    }
}

fn run_to(program: &str, args: &[String], control: &Path, stdin: &mut dyn BufRead) -> Out {
    if args.is_empty() {
        return list(&args::parse(&["-L"]).expect("-L parses"), control);
    }
    let inv = match args::parse(args) {
        Ok(i) => i,
        Err(e) => return arg_error(program, &e),
    };
    match inv.command {
        Command::Help => Out::ok(usage(program)),
        Command::Version => Out::ok(format!(
            "ipvsadm v1.31 (lvs {}, over its control socket)\n",
            env!("CARGO_PKG_VERSION")
        )),
        Command::List => list(&inv, control),
        Command::Save => match control::status(control) {
            Ok(snap) => Out::ok(output::save(output::views(&snap), false)),
            Err(e) => unreachable(&e),
        },
        Command::Zero => {
            let scope = match inv.service {
                None => ZeroScope::All,
                Some(ServiceArg::Addr(proto, addr)) => ZeroScope::Service(Key::addr(proto, addr)),
                Some(ServiceArg::Fwmark(mark, v6)) => ZeroScope::Service(Key::mark(mark, v6)),
                Some(ServiceArg::Sctp(_)) => return Out::err("No such service\n".into(), 255),
            };
            match control::ipvsadm_zero(control, scope) {
                Ok(_) => Out::ok(String::new()),
                Err(e) => change_error(e, None),
            }
        }
        Command::Restore => restore(program, control, stdin),
        _ => match Change::from_invocation(&inv) {
            Err(e) => arg_error(program, &e),
            Ok(None) => Out::ok(String::new()),
            Ok(Some(change)) => match control::ipvsadm(control, vec![change], false) {
                Ok(answer) => Out {
                    stdout: String::new(),
                    stderr: notes(&answer.notes),
                    code: 0,
                },
                Err(e) => change_error(e, None),
            },
        },
    }
}

fn notes(notes: &[String]) -> String {
    notes.iter().map(|n| format!("note: {n}\n")).collect()
}

/// `-R`: every line a change, made all at once (or none).
fn restore(program: &str, control: &Path, stdin: &mut dyn BufRead) -> Out {
    let mut changes = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in stdin.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Out::err(format!("reading the rules: {e}\n"), 2),
        };
        let Some(words) = args::restore_words(&line) else {
            continue;
        };
        let with_line = |o: Out| Out {
            stderr: format!("line {}: {}", i + 1, o.stderr),
            ..o
        };
        let inv = match args::parse(&words) {
            Ok(inv) => inv,
            Err(e) => return with_line(arg_error(program, &e)),
        };
        match Change::from_invocation(&inv) {
            Err(e) => return with_line(arg_error(program, &e)),
            Ok(Some(c)) => {
                changes.push(c);
                lines.push(i + 1);
            }
            Ok(None) => {
                return with_line(Out::err(
                    format!(
                        "`{}` changes nothing: -R reads changes only\n",
                        words.join(" ")
                    ),
                    2,
                ));
            }
        }
    }
    if changes.is_empty() {
        return Out::ok(String::new());
    }
    match control::ipvsadm_restore(control, changes) {
        Ok(answer) => Out {
            stdout: String::new(),
            stderr: notes(&answer.notes),
            code: 0,
        },
        Err(e) => {
            let line = match &e {
                ChangeError::Refused { index, .. } => index.and_then(|i| lines.get(i).copied()),
                ChangeError::Control(_) => None,
            };
            change_error(e, line)
        }
    }
}

fn list(inv: &Invocation, control: &Path) -> Out {
    let f = Format {
        stats: inv.stats,
        rate: inv.rate,
        thresholds: inv.thresholds,
        persistent_conn: inv.persistent_conn,
        exact: inv.exact,
        nosort: inv.nosort,
    };
    if inv.connection || inv.timeout {
        return match control::ipvsadm(control, Vec::new(), inv.connection) {
            Ok(a) if inv.connection => {
                Out::ok(output::connections(&a.connections, inv.persistent_conn))
            }
            Ok(a) => Out::ok(output::timeouts(a.timeouts)),
            Err(e) => change_error(e, None),
        };
    }
    if inv.daemon {
        // No sync daemon runs: ipvsadm prints nothing.
        return Out::ok(String::new());
    }
    let snap = match control::status(control) {
        Ok(s) => s,
        Err(e) => return unreachable(&e),
    };
    let mut views = output::views(&snap);
    if inv.stats {
        // The counters since -Z.
        match control::ipvsadm(control, Vec::new(), false) {
            Ok(a) => output::since_zero(&mut views, &a.zeroed),
            Err(e) => return change_error(e, None),
        }
    }
    // With --stats too, ipvsadm prints the counters (its FMT_STATS wins over FMT_RATE).
    if inv.rate && !inv.stats {
        let before = views;
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = match control::status(control) {
            Ok(s) => s,
            Err(e) => return unreachable(&e),
        };
        let secs = (now.taken_unix_ms.saturating_sub(snap.taken_unix_ms)) as f64 / 1000.0;
        views = output::rates(&before, &output::views(&now), secs);
    }
    // ipvsadm's `list_service`: a service that is not there is "No such service", exit 1.
    let key = match inv.service {
        None => return Out::ok(output::list(views, snap.conn_table_size, f)),
        Some(ServiceArg::Addr(proto, addr)) => Key::addr(proto, addr),
        Some(ServiceArg::Fwmark(mark, v6)) => Key::mark(mark, v6),
        Some(ServiceArg::Sctp(_)) => return Out::err("No such service\n".into(), 1),
    };
    match views.iter().find(|s| s.is(&key)) {
        Some(s) => Out::ok(output::list_one(s, f)),
        None => Out::err("No such service\n".into(), 1),
    }
}

fn usage(program: &str) -> String {
    format!(
        r#"ipvsadm v1.31 (lvs {version}: changes go to the running lvs agent)
Usage:
  {p} -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask]
  {p} -D -t|u service-address
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e -t|u service-address -r server-address [options]
  {p} -d -t|u service-address -r server-address
  {p} -L|l [options]
  {p} --set tcp tcpfin udp
  {p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the services ipvsadm made
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --set tcp tcpfin udp        set connection timeout values
  --help            -h        display this help message

Options:
  --tcp-service  -t service-address   service-address is host[:port]
  --udp-service  -u service-address   service-address is host[:port]
  --scheduler    -s scheduler         the default scheduler is wlc (lvs implements the
                                      schedulers `lvs check` accepts)
  --persistent   -p [timeout]         persistent service (default 360 s)
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --weight       -w weight            capacity of real server
  --connection   -c                   output of current connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --nosort                            disable sorting output of service/server entries
  --numeric      -n                   numeric output of addresses and ports

The agent's control socket: $LVS_CONTROL (default {socket}).
"#,
        version = env!("CARGO_PKG_VERSION"),
        p = program,
        socket = control::DEFAULT_SOCKET,
    )
}

//! The commands an alert runs (`fallbackcommand`, `callback`): split into words like a shell
//! would, run without one, their output logged, killed after a timeout.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    task::JoinHandle,
};

use super::{AlertError, ErrorChain};
use crate::config::model::Protocol;

/// Runs a fallback command as ldirectord does:
/// `<command words…> <start|stop> <vip:port> <tcp|udp>`. Logs and returns the outcome.
pub async fn run_fallback_command(
    command: &str,
    start: bool,
    vip: SocketAddr,
    protocol: Protocol,
    timeout: Duration,
) -> Result<(), AlertError> {
    let args = vec![
        if start { "start" } else { "stop" }.to_string(),
        vip.to_string(),
        match protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
        .to_string(),
    ];
    run_logged("fallbackcommand", command, args, timeout).await
}

/// Runs the `callback` command after a configuration change, as ldirectord does:
/// `<command words…> <config file path>`. Logs and returns the outcome.
pub async fn run_callback(
    command: &str,
    config_path: &Path,
    timeout: Duration,
) -> Result<(), AlertError> {
    let args = vec![config_path.display().to_string()];
    run_logged("callback", command, args, timeout).await
}

pub(super) fn spawn_command(
    what: &'static str,
    command: String,
    args: Vec<String>,
    timeout: Duration,
) -> JoinHandle<Result<(), AlertError>> {
    tokio::spawn(async move { run_logged(what, &command, args, timeout).await })
}

async fn run_logged(
    what: &'static str,
    command: &str,
    args: Vec<String>,
    timeout: Duration,
) -> Result<(), AlertError> {
    let r = run_command(command, &args, timeout).await;
    match &r {
        Ok(()) => tracing::info!(command = what, program = %command, ?args, "command ran"),
        Err(e) => {
            tracing::error!(command = what, program = %command, ?args, error = %ErrorChain(e), "command failed")
        }
    }
    r
}

/// Runs `command` (split into words) with `extra` appended as arguments, without a shell,
/// in its own process group, killing the group after `timeout`.
async fn run_command(command: &str, extra: &[String], timeout: Duration) -> Result<(), AlertError> {
    let words = split_words(command).map_err(|reason| AlertError::BadCommand {
        command: command.to_string(),
        reason,
    })?;
    let Some((program, first)) = words.split_first() else {
        return Err(AlertError::BadCommand {
            command: command.to_string(),
            reason: "empty",
        });
    };
    let mut child = Command::new(program)
        .args(first)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AlertError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    // Read the output concurrently so a chatty command cannot fill the pipe and hang.
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(log_lines(program.clone(), s)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(log_lines(program.clone(), s)));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(r) => r.map_err(|source| AlertError::Wait {
            program: program.clone(),
            source,
        })?,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
            // Don't wait for the readers: a grandchild outside the group may hold the pipes.
            for h in [out, err].into_iter().flatten() {
                h.abort();
            }
            return Err(AlertError::CommandTimeout {
                program: program.clone(),
                timeout,
            });
        }
    };
    for h in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), h).await;
    }
    if status.success() {
        Ok(())
    } else {
        Err(AlertError::CommandFailed {
            program: program.clone(),
            status,
        })
    }
}

async fn log_lines<R: tokio::io::AsyncRead + Unpin>(program: String, r: R) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(%program, output = %line, "command output");
    }
}

/// Splits a command line into words like a POSIX shell (no expansions): blanks separate
/// words, `'…'` is literal, `"…"` honours `\"`, `\\`, `\$` and `` \` ``, and `\` outside
/// quotes escapes the next character.
pub(crate) fn split_words(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote"),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => return Err("trailing backslash"),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

//! External checks: run `checkcommand`.
//!
//! As ldirectord's `check_external`: the command is executed directly (no shell) with four
//! arguments: the virtual server's address, the virtual port, the real server's address and
//! the real's port. Exit status 0 means up; anything else, failing to start, or running past
//! the timeout (its process group is then killed) means down. Whitespace in `checkcommand` separates
//! extra leading arguments (an lvs leniency; ldirectord would fail to exec such a command).
//!
//! With keepalived's `misc_dynamic` ([`run`] with `dynamic`), as keepalived's check_misc: exit
//! 0 means up (the weight stays), 1 down, and 2-255 up with the real's weight set to the code
//! minus 2.

use std::{io, net::SocketAddr, process::Stdio, time::Duration};

use tokio::process::Command;

/// Errors of external checks.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// The command is empty.
    #[error("empty checkcommand")]
    Empty,
    /// The command could not be started.
    #[error("cannot run {command:?}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Waiting for the command failed.
    #[error("waiting for {command:?} failed")]
    Wait {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The command exited with a failure.
    #[error("{command:?} exited with {status}")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The command cannot be split into words (keepalived's quoting).
    #[error("cannot split {command:?} into words: {why}")]
    Words {
        /// The command.
        command: String,
        /// What is wrong.
        why: String,
    },
    /// The command ran past the timeout and was killed.
    #[error("{command:?} killed after {timeout:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// The four arguments ldirectord passes: VIP, virtual port, real IP, real port. IPv6
/// addresses are bracketed (`[2001:db8::1]`), as ldirectord keeps them from its config.
pub fn arguments(virtual_addr: SocketAddr, real: SocketAddr) -> [String; 4] {
    let ip = |a: SocketAddr| match a {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    [
        ip(virtual_addr),
        virtual_addr.port().to_string(),
        ip(real),
        real.port().to_string(),
    ]
}

/// ldirectord's command line: `command`'s words (split at whitespace; an lvs leniency,
/// ldirectord would exec the whole text) and its four arguments ([`arguments`]).
pub fn ldirectord_words(command: &str, args: &[String; 4]) -> Vec<String> {
    command
        .split_whitespace()
        .map(str::to_string)
        .chain(args.iter().cloned())
        .collect()
}

/// keepalived's command line (`misc_path`, as its `alloc_strvec_quoted_escaped` splits it):
/// words at whitespace, `'...'` and `"..."` quoting (the quotes dropped), `\` escaping the
/// next character (`\n`, `\t`... and `\xHH`, `\NNN` octal as C's), nothing appended. `Err`
/// says what is wrong (a quote not closed, a `\` at the end).
pub fn keepalived_words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = command.chars().peekable();
    loop {
        while chars.next_if(|c| " \t\n\r\x0b\x0c".contains(*c)).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (_, '\\') => word.push(unescape(&mut chars).ok_or("a `\\` ends it")?),
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => word.push(c),
                (None, '\'' | '"') => quote = Some(c),
                (None, c) if " \t\n\r\x0b\x0c".contains(c) => break,
                (None, c) => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("its {q} quote is not closed"));
        }
        words.push(word);
    }
}

/// The character a `\` stands for, the escape's characters taken from `chars` (keepalived's
/// escapes, as C's); `None` at the end of the text.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = chars.next()?;
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                  radix: u32,
                  max: usize,
                  first: u32| {
        let mut v = first;
        for _ in 0..max {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                }
                None => break,
            }
        }
        char::from_u32(v & 0xff)
    };
    Some(match c {
        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => digits(chars, 16, 2, 0)?,
        'c' if chars.peek().is_some() => char::from_u32(u32::from(chars.next()? as u8 & 0x1f))?,
        '0'..='7' => digits(chars, 8, 2, c.to_digit(8)?)?,
        'a' => '\x07',
        'b' => '\x08',
        'E' => '\x1b',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        c => c,
    })
}

/// Runs `command` with ldirectord's `args`, killing it at `timeout`: up on exit 0.
pub async fn check(
    command: &str,
    args: &[String; 4],
    timeout: Duration,
) -> Result<String, ExternalError> {
    run(command, &ldirectord_words(command, args), timeout, false)
        .await
        .map(|(m, _)| m)
}

/// Runs `words` (the program and its arguments, [`ldirectord_words`] or
/// [`keepalived_words`] of `command`), killing it at `timeout`. With `dynamic` (keepalived's
/// `misc_dynamic`), an exit code 2-255 is up with the weight `code - 2`, returned beside the
/// message; exit 0 is up with the weight unchanged (`None`); anything else is down.
pub async fn run(
    command: &str,
    words: &[String],
    timeout: Duration,
    dynamic: bool,
) -> Result<(String, Option<u32>), ExternalError> {
    let (program, args) = words.split_first().ok_or(ExternalError::Empty)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .spawn()
        .map_err(|source| ExternalError::Spawn {
            command: command.to_string(),
            source,
        })?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok((format!("{command:?} exited 0"), None)),
        Ok(Ok(status))
            if dynamic
                && let Some(code @ 2..) = status.code().and_then(|c| u32::try_from(c).ok()) =>
        {
            let weight = code - 2;
            Ok((
                format!("{command:?} exited {code}: weight {weight}"),
                Some(weight),
            ))
        }
        Ok(Ok(status)) => Err(ExternalError::Failed {
            command: command.to_string(),
            status,
        }),
        Ok(Err(source)) => Err(ExternalError::Wait {
            command: command.to_string(),
            source,
        }),
        Err(_) => {
            // Kill the whole group and reap now rather than leaving it to the drop.
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the group this child leads; no memory is involved.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.kill().await;
            Err(ExternalError::Timeout {
                command: command.to_string(),
                timeout,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::within;
    use std::path::PathBuf;

    /// Whether process `pid` is gone: no longer in /proc, or a zombie (killed, waiting to be
    /// reaped by whoever inherited it).
    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the command name in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    /// Kills `pid` if it still runs, so that a failing test leaves nothing behind.
    fn cleanup(pid: i32) {
        if !gone(pid) {
            // SAFETY: kill(2) with a pid and a signal; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// An executable script `name` in its own test directory (kept alive by the caller).
    fn script(name: &str, body: &str) -> (crate::testdir::TestDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::testdir::TestDir::new(&format!("ext-{name}"));
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    fn args() -> [String; 4] {
        arguments(
            "192.0.2.1:80".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn exit_codes_and_arguments() {
        let (_ok_dir, ok) = script(
            "args.sh",
            r#"[ "$1 $2 $3 $4" = "192.0.2.1 80 127.0.0.1 8080" ] && exit 0; exit 1"#,
        );
        within(
            15,
            "the arguments script",
            check(ok.to_str().unwrap(), &args(), Duration::from_secs(5)),
        )
        .await
        .unwrap();
        let (_fail_dir, fail) = script("fail.sh", "exit 1");
        let err = within(
            15,
            "the failing script",
            check(fail.to_str().unwrap(), &args(), Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExternalError::Failed { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn dynamic_exit_codes_set_the_weight() {
        // keepalived's misc_dynamic: 0 up (weight kept), 1 down, 2 weight 0, 5 weight 3.
        for (code, want) in [
            (0, Some(None)),
            (1, None),
            (2, Some(Some(0))),
            (5, Some(Some(3))),
        ] {
            let (_dir, s) = script(&format!("dyn{code}.sh"), &format!("exit {code}"));
            let got = within(
                15,
                "a misc_dynamic script",
                run(
                    s.to_str().unwrap(),
                    &ldirectord_words(s.to_str().unwrap(), &args()),
                    Duration::from_secs(5),
                    true,
                ),
            )
            .await;
            match want {
                Some(weight) => assert_eq!(got.unwrap().1, weight, "exit {code}"),
                None => assert!(
                    matches!(got, Err(ExternalError::Failed { .. })),
                    "exit {code}: {got:?}"
                ),
            }
        }
        // Without misc_dynamic, any non-zero exit is down.
        let (_dir, s) = script("static5.sh", "exit 5");
        let got = within(
            15,
            "a plain script",
            run(
                s.to_str().unwrap(),
                &ldirectord_words(s.to_str().unwrap(), &args()),
                Duration::from_secs(5),
                false,
            ),
        )
        .await;
        assert!(matches!(got, Err(ExternalError::Failed { .. })), "{got:?}");
    }

    /// keepalived's misc_path: split with quotes and escapes, run with nothing appended.
    #[tokio::test]
    async fn keepalived_commands_are_split_as_keepalived_splits_them() {
        assert_eq!(
            keepalived_words(r#" /bin/sh -c 'nc -z "h" 80' a\ b "x\"y" \x41\101\t "#).unwrap(),
            ["/bin/sh", "-c", "nc -z \"h\" 80", "a b", "x\"y", "AA\t"]
        );
        assert!(
            keepalived_words("/bin/x 'open")
                .unwrap_err()
                .contains("' quote is not closed")
        );
        assert!(keepalived_words("/bin/x \\").is_err());
        let (_dir, s) = script(
            "count.sh",
            r#"[ "$#" = 2 ] && [ "$2" = "b c" ] && exit 0; exit 1"#,
        );
        let command = format!("{} a 'b c'", s.display());
        within(
            15,
            "the keepalived-style script",
            run(
                &command,
                &keepalived_words(&command).unwrap(),
                Duration::from_secs(5),
                false,
            ),
        )
        .await
        .unwrap();
    }

    #[test]
    fn ipv6_arguments_are_bracketed() {
        let a = arguments(
            "[2001:db8::1]:53".parse().unwrap(),
            "[::1]:5353".parse().unwrap(),
        );
        assert_eq!(a, ["[2001:db8::1]", "53", "[::1]", "5353"]);
    }

    #[tokio::test]
    async fn slow_command_is_killed_with_its_process_group() {
        let scratch = crate::testdir::TestDir::new("ext-group");
        let pidfile = scratch.join("grandchild");
        // The command starts a grandchild (in its process group) and waits for it.
        let (_dir, slow) = script(
            "slow.sh",
            &format!(
                "sleep 60 &\necho $! > {}.tmp\nmv {0}.tmp {0}\nwait",
                pidfile.display()
            ),
        );
        // The timeout leaves the shell ample time to start its grandchild on a loaded machine.
        let timeout = Duration::from_secs(2);
        let err = within(
            15,
            "the slow script to be killed at its timeout",
            check(slow.to_str().unwrap(), &args(), timeout),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExternalError::Timeout { .. }), "{err:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap_or_else(|e| {
                panic!("the script did not start its grandchild within {timeout:?}: {e}")
            })
            .trim()
            .parse()
            .unwrap();
        // SIGKILL is delivered at once, but the kernel may take a moment to tear it down.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let killed = gone(pid);
        cleanup(pid);
        assert!(
            killed,
            "the command's grandchild {pid} outlived the timeout: its process group was not killed"
        );
    }

    #[tokio::test]
    async fn missing_command_fails() {
        let err = within(
            15,
            "a check of a missing command",
            check("/nonexistent/lvs-check", &args(), Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExternalError::Spawn { .. }), "{err:?}");
    }
}

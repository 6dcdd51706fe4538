//! The parser against ipvsadm's rules (ipvsadm.c `parse_options`, `process_options`,
//! `generic_opt_check`).

use super::*;

fn p(line: &str) -> Result<Invocation, ArgError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    parse(&words)
}

fn err(line: &str) -> (String, u8) {
    let e = p(line).unwrap_err();
    (e.to_string(), e.exit_code())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn services_take_ipvsadm_defaults() {
    let i = p("-A -t 10.0.0.1:80").unwrap();
    assert_eq!(i.command, Command::AddService);
    assert_eq!(
        i.service,
        Some(ServiceArg::Addr(Proto::Tcp, sa("10.0.0.1:80")))
    );
    assert_eq!(i.scheduler.as_deref(), Some("wlc"));
    assert_eq!(i.persistent, None);
    // -p without a value: 360 s; with one: that; the next option is no value.
    assert_eq!(p("-A -t 10.0.0.1:80 -p").unwrap().persistent, Some(360));
    assert_eq!(
        p("-A -t 10.0.0.1:80 -p 600 -s rr").unwrap().persistent,
        Some(600)
    );
    let i = p("-A -t 10.0.0.1:80 -p -s rr").unwrap();
    assert_eq!(
        (i.persistent, i.scheduler.as_deref()),
        (Some(360), Some("rr"))
    );
    assert_eq!(
        p("-A -t 10.0.0.1:80 -p 60 -M 255.255.255.0")
            .unwrap()
            .netmask,
        Some(24)
    );
    assert_eq!(
        p("-A -u [2001:db8::1]:53 -p -M 64").unwrap().netmask,
        Some(64)
    );
    // Long options, with = too.
    let i = p("--add-service --udp-service=10.0.0.1:53 --scheduler rr").unwrap();
    assert_eq!(
        i.service,
        Some(ServiceArg::Addr(Proto::Udp, sa("10.0.0.1:53")))
    );
    // Service names for ports, from /etc/services (or lvs's built-in few).
    assert_eq!(
        p("-A -t 10.0.0.1:http").unwrap().service,
        Some(ServiceArg::Addr(Proto::Tcp, sa("10.0.0.1:80")))
    );
}

#[test]
fn bundled_short_options_as_popt_reads_them() {
    let i = p("-At 8.8.8.8:80 -s rr").unwrap();
    assert_eq!(
        i.service,
        Some(ServiceArg::Addr(Proto::Tcp, sa("8.8.8.8:80")))
    );
    let i = p("-at 8.8.8.8:80 -r 192.168.10.2:80 -m").unwrap();
    assert_eq!(i.command, Command::AddReal);
    assert_eq!(i.method, Some(Method::Masq));
    let i = p("-Lnc").unwrap();
    assert!(i.numeric && i.connection && i.command == Command::List);
    let i = p("-t10.0.0.1:80 -A");
    assert_eq!(i.unwrap_err().exit_code(), 255, "the command comes first");
}

#[test]
fn reals_take_ipvsadm_defaults_and_the_service_port() {
    let i = p("-a -t 10.0.0.1:80 -r 10.0.1.1").unwrap();
    assert_eq!(i.real, Some(sa("10.0.1.1:80")));
    assert_eq!(i.method, None);
    assert_eq!(i.weight, None);
    // Direct routing and tunnels keep the service's port whatever is written.
    assert_eq!(
        p("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -g").unwrap().real,
        Some(sa("10.0.1.1:80"))
    );
    assert_eq!(
        p("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -i").unwrap().real,
        Some(sa("10.0.1.1:80"))
    );
    // NAT may change it.
    assert_eq!(
        p("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 0")
            .unwrap()
            .real,
        Some(sa("10.0.1.1:8080"))
    );
    assert_eq!(
        p("-e -t 10.0.0.1:80 -r 10.0.1.1 -w 65535").unwrap().weight,
        Some(65535)
    );
    assert_eq!(
        p("-a -u [2001:db8::1]:53 -r 2001:db8::2").unwrap().real,
        Some(sa("[2001:db8::2]:53"))
    );
}

#[test]
fn ipvsadm_messages_and_exit_codes() {
    for (line, want, code) in [
        ("", "no command given", 255),
        ("-Q", "-Q: unknown option", 255),
        (
            "-A -s rr",
            "You need to supply the 'service-address' option for the 'add-service' command",
            2,
        ),
        (
            "-a -t 10.0.0.1:80",
            "You need to supply the 'real-server' option for the 'add-server' command",
            2,
        ),
        (
            "-A -t 10.0.0.1:80 -w 3",
            "Illegal 'weight' option with the 'add-service' command",
            2,
        ),
        (
            "-D -t 10.0.0.1:80 -s rr",
            "Illegal 'scheduler' option with the 'delete-service' command",
            2,
        ),
        (
            "-C -n",
            "Illegal 'numeric' option with the 'flush' command",
            2,
        ),
        ("-L -c --stats", "options conflicts in the list command", 2),
        (
            "-L -c --timeout",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
            2,
        ),
        ("-A -t 10.0.0.1:80 -L", "multiple commands specified", 2),
        (
            "-A -t 10.0.0.1:80 -s rr -s wrr",
            "multiple 'scheduler' options specified",
            2,
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.1 -g -m",
            "multiple 'forwarding-method' options specified",
            2,
        ),
        (
            "-A -t 10.0.0.1",
            "Zero port specified for non-persistent service",
            2,
        ),
        (
            "-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -g",
            "Different address family is allowed only for tunneling servers",
            2,
        ),
        (
            "-a -f 3 -6 -r 10.0.1.1 -m",
            "Different address family is allowed only for tunneling servers",
            2,
        ),
        (
            "-A -t 300.0.0.1:80",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-A -t 80",
            "illegal virtual server address[:port] specified",
            2,
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.1:99999",
            "illegal real server address[:port] specified",
            2,
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.1 -w 65536",
            "illegal weight specified",
            2,
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.1 -x -1",
            "illegal u_threshold specified",
            2,
        ),
        (
            "-A -t 10.0.0.1:80 -p 0",
            "invalid timeout value `0' specified",
            2,
        ),
        (
            "-A -t 10.0.0.1:80 -p 2678401",
            "invalid timeout value `2678401' specified",
            2,
        ),
        ("-A -f 0", "invalid fwmark value `0' specified", 2),
        ("-A -t 10.0.0.1:80 -6", "-6 used before -f", 2),
        (
            "-A -t 10.0.0.1:80 -p -M 255.255.0.255",
            "illegal virtual server persistent mask specified",
            2,
        ),
        (
            "-A -t 10.0.0.1:80 -o",
            "One-Packet Scheduling is only for UDP virtual services",
            2,
        ),
        (
            "-A -t 10.0.0.1:80 -s rr -b sh-port",
            "incompatible scheduler flag `sh-port'",
            2,
        ),
        ("--set 1 2", "--set option requires 3 timeout values", 2),
        ("--set 1 2 x", "invalid timeout value `x' specified", 2),
        ("-L extra", "unexpected argument extra", 2),
        (
            "--start-daemon sideways",
            "illegal start-daemon parameter specified",
            2,
        ),
        (
            "-a -t 10.0.0.100:80 -r 192.168.100.2 -b",
            "-b on a real server is DPVS's full-NAT",
            2,
        ),
        (
            "--add-laddr -z 192.168.100.200 -t 10.0.0.100:80 -F dpdk0",
            "--add-laddr is an option of DPVS's ipvsadm",
            2,
        ),
    ] {
        let (e, c) = err(line);
        assert!(e.starts_with(want), "{line:?}: {e}\nwanted: {want}");
        assert_eq!(c, code, "{line:?}: exit code");
    }
}

#[test]
fn lists_saves_and_the_rest() {
    let i = p("-L -n --stats --exact").unwrap();
    assert!(i.numeric && i.stats && i.exact);
    let i = p("-l --rate -t 10.0.0.1:80").unwrap();
    assert!(i.rate && i.service.is_some());
    assert!(p("-Ln --thresholds").unwrap().thresholds);
    assert!(p("-Ln --persistent-conn").unwrap().persistent_conn);
    assert!(p("-L --timeout").unwrap().timeout);
    assert!(p("-S -n").unwrap().numeric);
    assert_eq!(p("-Z").unwrap().command, Command::Zero);
    assert_eq!(p("-R").unwrap().command, Command::Restore);
    assert_eq!(p("--set 900 0 300").unwrap().timeouts, Some([900, 0, 300]));
    assert_eq!(p("-h").unwrap().command, Command::Help);
    assert_eq!(p("--help").unwrap().command, Command::Help);
    assert_eq!(p("-C").unwrap().command, Command::Clear);
    assert_eq!(
        p("-A -f 10 -6 -s rr").unwrap().service,
        Some(ServiceArg::Fwmark(10, true))
    );
}

#[test]
fn restore_lines_drop_the_word_ipvsadm() {
    assert_eq!(
        restore_words("ipvsadm -A -t 10.0.0.1:80  -s rr"),
        Some(vec!["-A", "-t", "10.0.0.1:80", "-s", "rr"])
    );
    assert_eq!(restore_words("   "), None);
}

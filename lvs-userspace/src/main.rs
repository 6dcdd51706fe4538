//! `lvs`: an XDP layer-4 load balancer (IPVS direct routing) with ldirectord's health checks.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, Parser, Subcommand};
use lvs::{
    agent::{self, RunOptions},
    config,
    dataplane::{AttachMode, bpffs},
    logging,
};

#[derive(Parser)]
#[command(
    name = "lvs",
    version,
    about = "XDP direct-routing load balancer with ldirectord-compatible health checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the balancer and keep it in line with the config and the reals' health.
    Run {
        /// Config file: keepalived.conf, TOML, ldirectord.cf or ipvsadm rules (ipvsadm-save),
        /// told by its content (a file ending in .toml is TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// The config's format, instead of telling it from the content.
        #[arg(long, value_enum)]
        format: Option<config::Format>,
        /// Interface to attach to (default: the one holding the VIPs).
        #[arg(long, short)]
        interface: Option<String>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        xdp_mode: AttachMode,
        /// A bpf filesystem on the host, for the pins (maps and XDP link) that let a restarted
        /// agent take over without a forwarding gap [default: /sys/fs/bpf]. Under `ip netns
        /// exec`, which hides /sys/fs/bpf, pass one mounted elsewhere (e.g. /run/lvs/bpf);
        /// without it, lvs runs there without pins, and says so.
        #[arg(long)]
        bpffs: Option<PathBuf>,
        /// Instance name: pins go to BPFFS/lvs/INSTANCE ([A-Za-z0-9_.-]+, not . or ..).
        #[arg(long, default_value = "default", value_parser = parse_instance)]
        instance: String,
        /// Do not pin: the data plane lives and dies with this process.
        #[arg(long)]
        no_pin: bool,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
        /// Control socket that `lvs status` asks.
        #[arg(long, default_value = lvs::control::DEFAULT_SOCKET)]
        control: PathBuf,
    },
    /// Show the virtual services, their reals, counters and health (like `ipvsadm -Ln`).
    Status {
        /// Control socket of the running agent.
        #[arg(long, default_value = lvs::control::DEFAULT_SOCKET)]
        control: PathBuf,
        /// Totals: connections, packets and bytes (ipvsadm's --stats).
        #[arg(long, conflicts_with_all = ["rate", "json"])]
        stats: bool,
        /// Rates per second over one second (ipvsadm's --rate).
        #[arg(long, conflicts_with = "json")]
        rate: bool,
        /// The whole snapshot as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config and print what would run.
    Check {
        /// Config file (keepalived.conf, TOML, ldirectord.cf or ipvsadm rules).
        file: PathBuf,
        /// The config's format, instead of telling it from the content.
        #[arg(long, value_enum)]
        format: Option<config::Format>,
    },
    /// Print the TOML equivalent of a config (keepalived.conf, ldirectord.cf, ipvsadm rules or
    /// TOML).
    Convert {
        /// Config file.
        file: PathBuf,
        /// The config's format, instead of telling it from the content.
        #[arg(long, value_enum)]
        format: Option<config::Format>,
    },
    /// ipvsadm's command line, acting on the running agent (as ipvsadm on IPVS). The same
    /// binary called `ipvsadm` (a symlink) is this command. The agent's control socket is
    /// $LVS_CONTROL (default /run/lvs/lvs.sock).
    #[command(disable_help_flag = true)]
    Ipvsadm {
        /// ipvsadm's arguments (`-A -t VIP:80 -s rr`, `-Ln`, `-S -n`, `-R`...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// On a real server behind a tunnelling director: strip the outer header of IP-in-IP
    /// packets to the VIPs (XDP), for kernels without the ipip/ip6tnl modules. Runs until
    /// SIGINT or SIGTERM.
    Decap {
        /// The real's interface the tunnelled packets arrive on.
        #[arg(long, short)]
        interface: String,
        /// A VIP this real serves (repeat for more).
        #[arg(long = "vip", required = true)]
        vips: Vec<std::net::IpAddr>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        xdp_mode: AttachMode,
    },
    /// Build a lab in network namespaces, run lvs in it and show the split per real server.
    Demo {
        /// New HTTP connections to send through the VIP.
        #[arg(long, default_value_t = 600)]
        requests: usize,
    },
}

/// `--instance`: a name that stays under `BPFFS/lvs/`.
fn parse_instance(name: &str) -> Result<String, String> {
    if bpffs::valid_instance(name) {
        Ok(name.to_string())
    } else {
        Err(
            "an instance name is made of letters, digits, `_`, `.` and `-`, and is not `.` or `..`"
                .into(),
        )
    }
}

fn main() -> std::process::ExitCode {
    // Called `ipvsadm` (a symlink to lvs, as busybox's applets): ipvsadm's command line.
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some(std::ffi::OsStr::new("ipvsadm")) {
        let args: Vec<String> = argv.collect();
        let code = lvs::ipvsadm::cli::run("ipvsadm", &args, &lvs::ipvsadm::cli::control_path());
        return std::process::ExitCode::from(code);
    }
    let cli = Cli::parse();
    if let Command::Ipvsadm { args } = &cli.command {
        let code = lvs::ipvsadm::cli::run("ipvsadm", args, &lvs::ipvsadm::cli::control_path());
        return std::process::ExitCode::from(code);
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes on one line, without a backtrace: what an operator
            // needs is the file, line and key, or the step that failed.
            eprintln!("lvs: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text the message
/// already holds (many errors name their cause in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Raises the soft limit of open files to the hard one: a check holds a socket while it runs,
/// thousands at once with thousands of reals, and the soft limit is often 1,024 (systemd's
/// default) while the hard one is far higher.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!(
                    "cannot raise the open-files limit to {}: {}",
                    limit.rlim_max,
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Writes `out` to standard output. A reader that went away (`lvs status | head`) ends the
/// output quietly: that is no error of lvs.
fn emit(out: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to standard output"),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            config: path,
            format,
            interface,
            xdp_mode,
            bpffs,
            instance,
            no_pin,
            log_json,
            control,
        } => {
            // A config that does not load stops here: nothing attached.
            let config = config::load_as(&path, format)?;
            // One agent per instance: its lock is taken before anything is touched and held
            // until this process exits.
            let (pin_dir, _instance_lock, unpinned) =
                match bpffs::choose(bpffs.as_deref(), no_pin, &instance)? {
                    bpffs::Pinning::At(dir) => {
                        let lock = bpffs::lock_instance(&dir, &instance)?;
                        (Some(dir), Some(lock), None)
                    }
                    bpffs::Pinning::Unpinned { warning } => (None, None, warning),
                };
            let log = logging::init(&config.globals.log, config.globals.supervised, log_json)?;
            if let Some(w) = unpinned {
                tracing::warn!("{w}");
            }
            raise_open_files_limit();
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            let opts = RunOptions {
                config: path,
                format,
                interface,
                mode: xdp_mode,
                pin_dir: pin_dir.clone(),
                control,
            };
            let result = rt.block_on(agent::run(opts, config, Some(log)));
            if result.is_err()
                && let Some(dir) = &pin_dir
            {
                // A start that failed leaves no directory of its own either (only an empty
                // one is removed: pins adopted from an earlier agent stay).
                let _ = std::fs::remove_dir(dir);
            }
            Ok(result?)
        }
        Command::Check { file, format } => {
            let c = config::load_as(&file, format)?;
            emit(config::render_check(&c).as_bytes())
        }
        Command::Convert { file, format } => {
            let c = config::load_as(&file, format)?;
            emit(config::to_toml(&c).as_bytes())
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lvs", &mut out);
            emit(&out)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            emit(&out)
        }
        Command::Status {
            control,
            stats,
            rate,
            json,
        } => {
            let snap = lvs::control::status(&control)?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&snap)?)
            } else if stats {
                lvs::status::render_stats(&snap)
            } else if rate {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = lvs::control::status(&control)?;
                lvs::status::render_rate(&snap, &now)
            } else {
                let now = lvs::agent::snapshot::unix_ms(std::time::SystemTime::now());
                lvs::status::render_table(&snap, now)
            };
            emit(text.as_bytes())
        }
        Command::Demo { requests } => lvs::demo::run(requests),
        Command::Ipvsadm { .. } => unreachable!("run by main"),
        Command::Decap {
            interface,
            vips,
            xdp_mode,
        } => Ok(lvs::decap::run(&interface, &vips, xdp_mode)?),
    }
}

//! `lvs`: an XDP layer-4 load balancer (IPVS direct routing) with ldirectord's health checks.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use lvs::{
    agent::{self, RunOptions},
    config,
    dataplane::AttachMode,
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
        /// Config file: TOML if it ends in .toml, ldirectord.cf syntax otherwise.
        #[arg(long, short)]
        config: PathBuf,
        /// Interface to attach to (default: the one holding the VIPs).
        #[arg(long, short)]
        interface: Option<String>,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        xdp_mode: AttachMode,
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
        /// Config file.
        file: PathBuf,
    },
    /// Print the TOML equivalent of a config (ldirectord.cf or TOML).
    Convert {
        /// Config file.
        file: PathBuf,
    },
    /// Build a lab in network namespaces, run lvs in it and show the split per real server.
    Demo {
        /// New HTTP connections to send through the VIP.
        #[arg(long, default_value_t = 600)]
        requests: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            interface,
            xdp_mode,
            control,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("LVS_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(agent::run(RunOptions {
                config,
                interface,
                mode: xdp_mode,
                control,
            }))?;
            Ok(())
        }
        Command::Check { file } => {
            let c = config::load(&file)?;
            print!("{}", config::render_check(&c));
            Ok(())
        }
        Command::Convert { file } => {
            let c = config::load(&file)?;
            print!("{}", config::to_toml(&c));
            Ok(())
        }
        Command::Status {
            control,
            stats,
            rate,
            json,
        } => {
            let snap = lvs::control::status(&control)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snap)?);
            } else if stats {
                print!("{}", lvs::status::render_stats(&snap));
            } else if rate {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = lvs::control::status(&control)?;
                print!("{}", lvs::status::render_rate(&snap, &now));
            } else {
                let now = lvs::agent::snapshot::unix_ms(std::time::SystemTime::now());
                print!("{}", lvs::status::render_table(&snap, now));
            }
            Ok(())
        }
        Command::Demo { requests } => lvs::demo::run(requests),
    }
}

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// flakeboot: netboot every machine on the LAN from Nix flakes.
#[derive(Debug, Parser)]
#[command(name = "flakeboot", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the boot services (DHCP, TFTP, HTTP) in the foreground until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Validate a config file and print every problem found.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Print recorded boot events (the daemon must not be running on this state dir).
    Events(EventsArgs),
    /// Print the machines seen (the daemon must not be running on this state dir).
    Machines {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when a daemon serves on this state dir (services bound, store open).
    Health {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
    },
    /// Manage flakes on the running daemon (through its control socket).
    Flake(FlakeArgs),
    /// Install an update bundle into the other A/B slot of the appliance.
    Update(UpdateArgs),
    /// Print the DHCP leases (the daemon must not be running on this state dir).
    Leases {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML config file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Where the store lives (overrides `state_dir` in the config).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Only this machine's events.
    #[arg(long)]
    pub mac: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct FlakeArgs {
    /// The running daemon's state directory (its control socket lives there).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the daemon's answer as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: FlakeCommand,
}

#[derive(Debug, Subcommand)]
pub enum FlakeCommand {
    /// List flakes, their locked revisions and hosts.
    List,
    /// Add a flake by URL (locks it and discovers its hosts).
    Add {
        url: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Re-lock a flake to its newest revision and build every netbootable host.
    Update {
        flake: String,
        /// Wait until the builds end; fail if one fails.
        #[arg(long)]
        wait: bool,
    },
    /// Build one host of a flake at its current lock.
    Build {
        flake: String,
        host: String,
        #[arg(long)]
        wait: bool,
    },
    /// A host's generations, oldest first.
    Generations { host: String },
    /// Pin a host to one of its generations (rollback).
    Rollback { host: String, generation: u32 },
    /// Undo a pin: boot the newest generation again.
    Unpin { host: String },
    /// Cancel a queued or running build.
    Cancel { build: u64 },
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(subcommand)]
    pub command: UpdateCommand,
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Write BUNDLE to the slot not running, verify its hashes, install its UKI with a try
    /// counter, then reboot.
    Apply {
        /// The bundle (a tar file, or a disk holding one).
        bundle: PathBuf,
        /// Work on this disk image instead of the running appliance (no reboot).
        #[arg(long)]
        disk: Option<PathBuf>,
        /// Where the running appliance's ESP is mounted.
        #[arg(long, default_value = "/efi")]
        esp: PathBuf,
        /// Do not reboot after installing.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Print the bundle's identity (its manifest's sha256) and version.
    Id { bundle: PathBuf },
}

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// flakeboot: netboot every machine on the LAN from Nix flakes.
#[derive(Debug, Parser)]
#[command(name = "flakeboot", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands that work on this machine's files: `--server` and its companions mean nothing
/// to them, so their help leaves them out.
const LOCAL_COMMANDS: [&str; 4] = ["serve", "check-config", "update", "restore"];
const REMOTE_ARGS: [&str; 4] = ["server", "token_file", "cacert", "pin"];

impl Cli {
    /// The command line, with the remote options hidden from the local commands' help.
    pub fn command_line() -> clap::Command {
        let cmd = Cli::command();
        let remote: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| REMOTE_ARGS.contains(&a.get_id().as_str()))
            .map(|a| a.clone().global(false).hide(true))
            .collect();
        // A subcommand that has an argument of a global's id keeps its own: these copies are
        // hidden, so the local commands' help leaves the remote options out.
        LOCAL_COMMANDS.into_iter().fold(cmd, |cmd, name| {
            cmd.mut_subcommand(name, |sub| sub.args(remote.iter().cloned()))
        })
    }

    /// Parses this process's arguments; exits with clap's message on a mistake or `--help`.
    pub fn parse_args() -> Cli {
        let matches = Cli::command_line().get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

/// Where the appliance is when the CLI runs elsewhere (a laptop on the LAN or VPN). Without
/// `--server`, commands ask this machine's daemon over the API socket in its state directory
/// (owner-only, no token).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Remote appliance")]
pub struct RemoteArgs {
    /// The appliance's management address, like https://10.0.0.2 or https://10.0.0.2:8443.
    #[arg(long, global = true, env = "FLAKEBOOT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// A file holding an API token (Settings > API tokens). Or put the token itself in the
    /// FLAKEBOOT_TOKEN variable; never on the command line.
    #[arg(long, global = true, env = "FLAKEBOOT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust the certificates in this PEM file: the appliance's own certificate, or the CA
    /// that signed one you uploaded.
    #[arg(long, global = true, env = "FLAKEBOOT_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256, as Settings > HTTPS certificate
    /// shows it (AB:CD:...; colons optional).
    #[arg(
        long,
        global = true,
        env = "FLAKEBOOT_PIN",
        value_name = "SHA256",
        conflicts_with = "cacert"
    )]
    pub pin: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the boot services (DHCP, TFTP, HTTP) in the foreground until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Validate a config file and print every problem found, in file order, as `FILE:LINE:
    /// FIELD: MESSAGE`; exits 2 when there is one. Checks it against this machine too (the LAN
    /// port and its subnet, the files and directories it names).
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
        /// The file is for another machine: what does not fit this one (a missing interface,
        /// file or directory) is a warning, not a problem.
        #[arg(long)]
        for_another_machine: bool,
        /// The daemon's state directory, whose flakes' hosts a menu default or a machine may
        /// name (`flake#host`): asked over its API socket, else read from its store. Default:
        /// the file's `state_dir`.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Print recorded boot events (with the daemon stopped, read from its store).
    Events(EventsArgs),
    /// Print the machines seen (with the daemon stopped, read from its store).
    Machines {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the daemon serves (services bound, store open).
    Health {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
    },
    /// Manage flakes, builds and generations.
    Flake(FlakeArgs),
    /// List builds and follow one's log.
    Build(BuildArgs),
    /// Assign a machine to a host or to the boot menu, power it on, forget it.
    Machine(MachineArgs),
    /// Release a machine's DHCP lease (router mode).
    Lease(LeaseArgs),
    /// What flakeboot sees on its LAN: the other DHCP servers.
    Lan(LanArgs),
    /// Print the public half of the appliance's SSH deploy key: add it to a forge as a
    /// read-only deploy key for git+ssh:// flakes.
    DeployKey {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        /// Print the API's JSON (the key and its SHA-256 fingerprint).
        #[arg(long)]
        json: bool,
    },
    /// Access tokens for private GitHub/GitLab flakes: list the hosts that have one, set
    /// (the token read from standard input) or remove one.
    AccessToken(AccessTokenArgs),
    /// Print the audit log: who changed what on the appliance, from where and when (newest
    /// first; with the daemon stopped, read from its store).
    Audit {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        /// At most this many (the newest; the API gives at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install an update bundle into the other A/B slot of the appliance (on the appliance,
    /// from a file or disk; `flakeboot firmware upload` does it over the API).
    Update(UpdateArgs),
    /// Save the appliance's config and state (store, TLS, WireGuard and SSH keys) as one
    /// archive encrypted with a passphrase (the age format), over the API. The passphrase is
    /// read from FLAKEBOOT_BACKUP_PASSPHRASE, else from standard input.
    Backup {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        /// Where to write the archive (created owner-only; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new (absent or empty) state directory, with the daemon stopped;
    /// then start the daemon on it. The passphrase as for `backup`. With --server: onto a
    /// fresh appliance that is not set up yet, as its setup page does (it starts again on the
    /// backup); its setup code (on its console) is read from FLAKEBOOT_SETUP_CODE, else from
    /// standard input, and its new certificate trusted with --pin or --cacert.
    Restore {
        /// The archive `flakeboot backup` wrote.
        file: PathBuf,
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        /// Where to write the config file, when the backup holds one from outside the state
        /// directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The appliance's firmware over the API: both slots and the last update (status), a
    /// signed update bundle uploaded and installed (upload), a reboot into it (reboot).
    Firmware(FirmwareArgs),
    /// Print the DHCP leases (with the daemon stopped, read from its store).
    Leases {
        #[arg(long, default_value = "/var/lib/flakeboot")]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// A command over the appliance's JSON API: with `--server` from anywhere on the LAN or
    /// VPN, else through the API socket in this state directory (the daemon on this machine).
    /// `None` for the commands that work on this machine's files (serve, check-config, update).
    pub fn api_state_dir(&self) -> Option<&std::path::Path> {
        match self {
            Command::Flake(a) => Some(&a.state_dir),
            Command::Build(a) => Some(&a.state_dir),
            Command::Machine(a) => Some(&a.state_dir),
            Command::Lease(a) => Some(&a.state_dir),
            Command::Lan(a) => Some(&a.state_dir),
            Command::AccessToken(a) => Some(&a.state_dir),
            Command::Firmware(a) => Some(&a.state_dir),
            Command::Machines { state_dir, .. }
            | Command::Leases { state_dir, .. }
            | Command::Health { state_dir }
            | Command::Audit { state_dir, .. }
            | Command::Backup { state_dir, .. }
            | Command::DeployKey { state_dir, .. } => Some(state_dir),
            Command::Events(a) => Some(&a.state_dir),
            Command::Serve(_)
            | Command::CheckConfig { .. }
            | Command::Update(_)
            | Command::Restore { .. } => None,
        }
    }
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
    /// At most this many (the newest; the API gives at most 10000).
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
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the answer as JSON (the daemon's, or the API's with --server).
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
        /// Follow its branch: re-lock every --check-every and on its webhook; a new revision
        /// is built and becomes current.
        #[arg(long)]
        follow: bool,
        /// How often to re-lock while it follows, e.g. "15m" (the default).
        #[arg(long)]
        check_every: Option<String>,
        /// A TXT record announcing new revisions ("rev=<commit>"), e.g.
        /// "_flakeboot.example.org": asked every minute instead of re-locking on a schedule
        /// (implies --follow).
        #[arg(long, value_name = "NAME")]
        notify_txt: Option<String>,
    },
    /// Follow a flake's branch (or stop), and how often it is re-locked.
    Follow {
        flake: String,
        /// Stop following.
        #[arg(long)]
        off: bool,
        /// How often to re-lock, e.g. "15m".
        #[arg(long)]
        check_every: Option<String>,
        /// A TXT record announcing new revisions, e.g. "_flakeboot.example.org" (asked every
        /// minute instead of re-locking on a schedule); "" removes it. --off removes it too.
        #[arg(long, value_name = "NAME")]
        notify_txt: Option<String>,
    },
    /// The push webhook of a flake: its URL and secret (made on first ask).
    Hook {
        flake: String,
        /// Replace the secret (the old one stops working at once).
        #[arg(long)]
        rotate: bool,
    },
    /// A flake's update history: what started each update, the revisions, the builds, and
    /// whether the new generation became current.
    History { flake: String },
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
    /// Remove a flake: cancel its builds, drop every generation of its hosts with its GC
    /// roots; machines assigned to its hosts boot the menu. A flake of the config file is
    /// refused (remove it there).
    Remove { flake: String },
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
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Check the bundle's signature and board without writing anything.
    Verify {
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Print the bundle's identity (its manifest's sha256) and version.
    Id { bundle: PathBuf },
}

/// Which bundles `flakeboot update` accepts: those signed by one of the keys, for the board.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The accepted public keys (*.pem); the image's own by default.
    #[arg(long, default_value = flakeboot_board::signing::KEYS_DIR)]
    pub keys: PathBuf,
    /// The board bundles must be built for; the image's own (/usr/lib/flakeboot/board) by
    /// default.
    #[arg(long)]
    pub board: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: BuildCommand,
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Every build, oldest first.
    List,
    /// Print a build's log as it is written, with its progress, until it ends; fail unless it
    /// succeeded.
    Log { build: u64 },
}

#[derive(Debug, Args)]
pub struct MachineArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: MachineCommand,
}

#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Make a machine boot a host (`flake#host`, or a config host), its local disk, or the boot
    /// menu. A machine the config file pins is refused (change it there).
    Assign {
        /// The machine's MAC, like 52:54:00:12:34:56.
        mac: String,
        /// The host to boot (`local`: its local disk).
        #[arg(required_unless_present_any = ["menu", "local_disk"])]
        host: Option<String>,
        /// Boot the menu instead of a host.
        #[arg(long, conflicts_with_all = ["host", "local_disk"])]
        menu: bool,
        /// Boot its local disk: iPXE exits to the firmware, which boots the next device in its
        /// boot order (network boot first, the disk next: the appliance decides).
        #[arg(long, conflicts_with = "host")]
        local_disk: bool,
    },
    /// Boot a host once: the machine's next boot gets HOST (a rescue system, a memory test),
    /// the one after its own host, local disk or menu again. Taken when HOST's kernel was
    /// delivered to it. A machine the config file pins is refused.
    BootOnce {
        /// The machine's MAC, like 52:54:00:12:34:56.
        mac: String,
        /// The host its next boot gets (`flake#host`, or a config host).
        #[arg(required_unless_present = "clear")]
        host: Option<String>,
        /// Clear it: the next boot is the machine's own choice.
        #[arg(long, conflicts_with = "host")]
        clear: bool,
    },
    /// Power a machine on: send the Wake-on-LAN magic packet on the LAN (a UDP broadcast to
    /// port 9 and an ethernet frame of type 0x0842).
    Wake {
        /// The machine's MAC, like 52:54:00:12:34:56.
        mac: String,
    },
    /// Forget a machine: its record, boot settings and boot events (its next DHCP request
    /// makes it anew). A machine the config file pins is refused (remove it there).
    Forget {
        /// The machine's MAC.
        mac: String,
    },
    /// Print a machine's console and log lines (netconsole, syslog), oldest first.
    Logs {
        /// The machine's MAC.
        mac: String,
        /// At most the newest this many lines (at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Debug, Args)]
pub struct LanArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: LanCommand,
}

#[derive(Debug, Args)]
pub struct FirmwareArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: FirmwareCommand,
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Both slots (version, boot entry, which runs), the image and the last update's result.
    Status,
    /// Send a signed update bundle (image/build.sh's .bundle.tar); the appliance checks its
    /// signature and board, then installs it into the slot not running.
    Upload {
        bundle: PathBuf,
        /// Reboot into the new slot once it is installed.
        #[arg(long)]
        reboot: bool,
    },
    /// Reboot the appliance now (into a newly installed slot).
    Reboot {
        /// Boot the running slot once in the development mode: a writable overlay in memory
        /// over the read-only root and a root shell on the ninth console; the boot after it is
        /// a normal one.
        #[arg(long)]
        development: bool,
    },
}

#[derive(Debug, Args)]
pub struct AccessTokenArgs {
    /// The daemon's state directory (its API socket lives there; unused with --server).
    #[arg(long, global = true, default_value = "/var/lib/flakeboot")]
    pub state_dir: PathBuf,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AccessTokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccessTokenCommand {
    /// The hosts that have a token and where each was set (never a token).
    List,
    /// Set or replace a host's token, read from standard input (never an argument: others
    /// could read it in the process list): `flakeboot access-token set github.com < token`.
    Set {
        /// The forge's host: github.com, gitlab.com, gitlab.example.org.
        host: String,
    },
    /// Remove a host's token (one set from the UI, API or CLI).
    Remove {
        /// The forge's host.
        host: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LanCommand {
    /// The other DHCP servers answering on the LAN: address, MAC, kind (full or proxy), the
    /// range seen, router and boot file they hand out, first and last seen.
    DhcpServers,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Release a machine's lease: its address is free for the next client at once.
    Release {
        /// The machine's MAC.
        mac: String,
    },
}

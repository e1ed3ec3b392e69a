//! Every CLI command but serve, check-config and update, over the appliance's JSON API: with
//! `--server` over HTTPS with a token, else through the daemon's owner-only API socket. One
//! code path, so the appliance and a laptop print the same. Human tables by default, the
//! API's JSON with `--json`. With the daemon stopped, `events`, `machines`, `leases` and
//! `audit` read its store (printed the same way).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flakeboot_appliance::wire::{
    self, AuditEntry, Event, Flake, Generation, Lease, LogLine, Machine,
};
use flakeboot_catalogue::MacAddr;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api_client::{ApiClient, Server, Token, encode};
use crate::api_tls::Trust;
use crate::cli::{
    BuildArgs, BuildCommand, Command, EventsArgs, FlakeArgs, FlakeCommand, LeaseArgs, LeaseCommand,
    MachineArgs, MachineCommand, RemoteArgs,
};
use crate::tables::{self, GenerationRow};
use crate::{build_log, inspect};

/// Runs a command ([`Command::api_state_dir`]) against the appliance at `--server`, or the
/// daemon serving `state_dir` on this machine.
pub fn run(command: Command, remote: &RemoteArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let client = match &remote.server {
        Some(server) => connect(server, remote)?,
        None => {
            let socket = state_dir.join(flakeboot_webui::API_SOCKET);
            // A command that can read the store, and no daemon answers (not running, or a
            // stale socket file): read the store. Other commands do not probe the socket.
            if inspect::reads_store(&command)
                && std::os::unix::net::UnixStream::connect(&socket).is_err()
                && let Some(offline) = inspect::offline(&command, state_dir)
            {
                return offline;
            }
            ApiClient::local(socket)?
        }
    };
    match command {
        Command::Flake(args) => flake(&client, args),
        Command::Build(args) => build(&client, args),
        Command::Machine(args) => machine(&client, args),
        Command::Lease(args) => lease(&client, args),
        Command::Lan(args) => lan(&client, args),
        Command::Machines { json, .. } => machines(&client, json),
        Command::Events(args) => events(&client, args),
        Command::Leases { json, .. } => leases(&client, json),
        Command::Health { .. } => health(&client),
        Command::DeployKey { json, .. } => deploy_key(&client, json),
        Command::AccessToken(args) => access_token(&client, args),
        Command::Audit { limit, json, .. } => audit(&client, limit, json),
        Command::Firmware(args) => crate::firmware_cmd::run(&client, args),
        Command::Backup { out, .. } => crate::backup_cmd::backup(&client, &out),
        other => Err(anyhow::anyhow!("{other:?} does not work over the API")),
    }
}

/// The API client for `--server`, its token and how to trust its certificate.
fn connect(server: &str, remote: &RemoteArgs) -> anyhow::Result<ApiClient> {
    let server = Server::parse(server)?;
    let token = Token::find(
        remote.token_file.as_deref(),
        std::env::var("FLAKEBOOT_TOKEN").ok(),
    )?;
    Ok(ApiClient::new(server, token, trust(remote)?)?)
}

/// How to trust the appliance's certificate: `--cacert` or `--pin`.
pub(crate) fn trust(remote: &RemoteArgs) -> anyhow::Result<Trust> {
    match (&remote.cacert, &remote.pin) {
        (Some(file), None) => Ok(Trust::CaFile(file.clone())),
        (None, Some(pin)) => Ok(Trust::pin(pin)?),
        _ => Err(crate::api_client::ClientError::NoTrust.into()),
    }
}

fn typed<T: DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value)
        .with_context(|| format!("the appliance's answer is not {what} (is it the same version?)"))
}

/// Prints `value` as pretty JSON. A reader that stops early (`| grep -q`, `| head`) is no
/// error: the rest is not wanted.
pub(crate) fn print_json(value: &Value) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn ids(value: &Value, key: &str) -> Vec<u64> {
    match value.get(key) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_u64).collect(),
        Some(v) => v.as_u64().into_iter().collect(),
        None => Vec::new(),
    }
}

/// `flakeboot flake ...` over the API.
fn flake(client: &ApiClient, args: FlakeArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    match args.command {
        FlakeCommand::List => {
            let v = client.get("/flakes")?;
            if json {
                return print_json(&v);
            }
            print!(
                "{}",
                tables::flakes(&typed::<Vec<Flake>>(v, "a flake list")?)
            );
        }
        FlakeCommand::Add {
            url,
            name,
            follow,
            check_every,
            notify_txt,
        } => {
            let v = client.post(
                "/flakes",
                &json!({ "url": url, "name": name, "follow": follow, "check_every": check_every, "notify_txt": notify_txt }),
            )?;
            if json {
                return print_json(&v);
            }
            print!("{}", tables::flake_added(&typed(v, "a flake")?));
        }
        FlakeCommand::Update { flake, wait } => {
            let v = client.post(&format!("/flakes/{}/update", encode(&flake)), &json!({}))?;
            return queued_builds(client, &v, "builds", wait, json);
        }
        FlakeCommand::Build { flake, host, wait } => {
            let v = client.post("/builds", &json!({ "flake": flake, "host": host }))?;
            return queued_builds(client, &v, "id", wait, json);
        }
        FlakeCommand::Generations { host } => return generations(client, &host, json),
        FlakeCommand::Rollback { host, generation } => {
            let v = client.post(
                "/generations/rollback",
                &json!({ "host": host, "number": generation }),
            )?;
            if json {
                return print_json(&v);
            }
            if let Some(warning) = v.get("warning").and_then(Value::as_str) {
                println!("Warning: {warning}.");
            }
            println!(
                "{host} boots generation {generation} now (pinned; `flakeboot flake unpin {host}` undoes it)."
            );
        }
        FlakeCommand::Unpin { host } => {
            let v = client.post("/generations/unpin", &json!({ "host": host }))?;
            if json {
                return print_json(&v);
            }
            println!(
                "{host} boots its newest generation again (the newest whose pre-flight passed or was skipped)."
            );
        }
        FlakeCommand::Remove { flake } => {
            let v = client.delete(&format!("/flakes/{}", encode(&flake)))?;
            if json {
                return print_json(&v);
            }
            print!("{}", removed_flake(&v));
        }
        FlakeCommand::Follow {
            flake,
            off,
            check_every,
            notify_txt,
        } => {
            let v = client.put(
                &format!("/flakes/{}/follow", encode(&flake)),
                &json!({ "follow": !off, "check_every": check_every, "notify_txt": notify_txt }),
            )?;
            if json {
                return print_json(&v);
            }
            let follow: wire::follow::Follow = typed(v, "follow settings")?;
            print!("{}", tables::follow(&flake, &follow));
        }
        FlakeCommand::Hook { flake, rotate } => {
            let path = format!("/flakes/{}/hook", encode(&flake));
            let v = if rotate {
                client.post(&format!("{path}/rotate"), &json!({}))?
            } else {
                client.get(&path)?
            };
            if json {
                return print_json(&v);
            }
            print!("{}", tables::hook(&typed(v, "a webhook")?));
        }
        FlakeCommand::History { flake } => {
            let v = client.get(&format!("/flakes/{}/history", encode(&flake)))?;
            if json {
                return print_json(&v);
            }
            print!("{}", tables::history(&typed(v, "an update history")?));
        }
        FlakeCommand::Cancel { build } => {
            let v = client.post(&format!("/builds/{build}/cancel"), &json!({}))?;
            if json {
                return print_json(&v);
            }
            if v.get("cancelled").and_then(Value::as_bool) == Some(true) {
                println!("Build {build} cancelled.");
            } else {
                println!("Build {build} had already ended.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn queued_builds(
    client: &ApiClient,
    answer: &Value,
    key: &str,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let ids = ids(answer, key);
    if wait {
        return build_log::report(&build_log::wait(client, &ids)?, json);
    }
    if json {
        return print_json(answer);
    }
    print!("{}", tables::queued(&ids));
    if let Some(id) = ids.first() {
        println!("Follow it with `flakeboot build log {id}`.");
    }
    Ok(ExitCode::SUCCESS)
}

/// The API's view of one host's generations.
#[derive(Debug, serde::Deserialize)]
struct GenerationsView {
    generations: Vec<Generation>,
    pinned: Option<u32>,
    /// What machines boot now (pinned, else the newest that passed or skipped pre-flight);
    /// absent from an older daemon, which booted the newest.
    #[serde(default)]
    current: Option<u32>,
}

fn generations(client: &ApiClient, host: &str, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get(&format!("/generations?host={}", encode(host)))?;
    // The API answers under the qualified name (`flake#host`), also for a short name.
    let (key, view) = match v.as_object().and_then(|m| m.iter().next()) {
        Some((key, view)) => (key.clone(), Some(view.clone())),
        None => (host.to_owned(), None),
    };
    if json {
        return print_json(&v);
    }
    let view: GenerationsView = match view {
        Some(view) => typed(view, "a host's generations")?,
        None => GenerationsView {
            generations: Vec::new(),
            pinned: None,
            current: None,
        },
    };
    let newest = view.generations.iter().map(|g| g.number).max();
    let current = view.current.or(view.pinned).or(newest);
    let rows: Vec<GenerationRow> = view
        .generations
        .into_iter()
        .map(|record| GenerationRow {
            current: Some(record.number) == current,
            pinned: view.pinned == Some(record.number),
            record,
        })
        .collect();
    print!("{}", tables::generations(&key, &rows));
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot build ...`.
fn build(client: &ApiClient, args: BuildArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BuildCommand::List => {
            let v = client.get("/builds")?;
            if args.json {
                return print_json(&v);
            }
            print!("{}", tables::builds(&typed::<Vec<_>>(v, "a build list")?));
            Ok(ExitCode::SUCCESS)
        }
        BuildCommand::Log { build } => build_log::follow(client, build, args.json),
    }
}

/// What `flake remove` prints: what went, and which machines boot the menu now.
fn removed_flake(v: &Value) -> String {
    let strings = |key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
    let generations = v.get("generations").and_then(Value::as_u64).unwrap_or(0);
    let hosts = strings("hosts");
    let mut out = format!("Removed flake {name}: {generations} generation(s)");
    if !hosts.is_empty() {
        out.push_str(&format!(" of {}", hosts.join(", ")));
    }
    out.push_str(" with their GC roots.\n");
    let cancelled = ids(v, "cancelled_builds");
    if !cancelled.is_empty() {
        let list: Vec<String> = cancelled.iter().map(u64::to_string).collect();
        out.push_str(&format!("Cancelled build(s) {}.\n", list.join(", ")));
    }
    for mac in strings("machines") {
        out.push_str(&format!("{mac} boots the menu now.\n"));
    }
    out
}

fn parse_mac(mac: &str) -> anyhow::Result<MacAddr> {
    mac.parse()
        .map_err(|e| anyhow::anyhow!("{mac:?} is not a MAC address like 52:54:00:12:34:56: {e}"))
}

/// `flakeboot lease ...`.
fn lease(client: &ApiClient, args: LeaseArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LeaseCommand::Release { mac } => {
            let mac = parse_mac(&mac)?;
            let v = client.delete(&format!("/leases/{}", encode(&mac.to_string())))?;
            if args.json {
                return print_json(&v);
            }
            let released: Vec<&str> = v
                .get("released")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            println!("Released {} ({mac}).", released.join(", "));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `flakeboot machine ...`.
fn machine(client: &ApiClient, args: MachineArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        MachineCommand::Wake { mac } => {
            let mac = parse_mac(&mac)?;
            let v = client.post(
                &format!("/machines/{}/wake", encode(&mac.to_string())),
                &json!({}),
            )?;
            if args.json {
                return print_json(&v);
            }
            let interface = v
                .get("interface")
                .and_then(Value::as_str)
                .unwrap_or("the LAN");
            println!(
                "Magic packet for {mac} sent on {interface} (UDP broadcast to port 9 and EtherType 0x0842)."
            );
            Ok(ExitCode::SUCCESS)
        }
        MachineCommand::Forget { mac } => {
            let mac = parse_mac(&mac)?;
            client.delete(&format!("/machines/{}", encode(&mac.to_string())))?;
            if args.json {
                return print_json(&json!({ "mac": mac, "forgotten": true }));
            }
            println!("Forgot {mac}: its record, boot settings and boot events.");
            Ok(ExitCode::SUCCESS)
        }
        MachineCommand::Logs { mac, limit } => {
            let mac = parse_mac(&mac)?;
            let v = client.get(&format!(
                "/machines/{}/logs?limit={limit}",
                encode(&mac.to_string())
            ))?;
            if args.json {
                return print_json(&v);
            }
            print!(
                "{}",
                tables::log_lines(&typed::<Vec<LogLine>>(v, "a list of log lines")?)
            );
            Ok(ExitCode::SUCCESS)
        }
        MachineCommand::Assign {
            mac,
            host,
            menu,
            local_disk,
        } => {
            let mac: MacAddr = mac.parse().map_err(|e| {
                anyhow::anyhow!("{mac:?} is not a MAC address like 52:54:00:12:34:56: {e}")
            })?;
            let host = if menu {
                String::new()
            } else if local_disk {
                flakeboot_catalogue::LOCAL_DISK.to_owned()
            } else {
                host.unwrap_or_default()
            };
            let v = client.post(
                &format!("/machines/{}", encode(&mac.to_string())),
                &json!({ "host": host }),
            )?;
            if args.json {
                return print_json(&v);
            }
            let m: Machine = typed(v, "a machine")?;
            match m.host.as_deref() {
                Some(flakeboot_catalogue::LOCAL_DISK) => {
                    println!("{} boots its local disk now.", m.mac);
                }
                Some(h) => println!("{} boots {h} now.", m.mac),
                None => println!("{} boots the menu now.", m.mac),
            }
            Ok(ExitCode::SUCCESS)
        }
        MachineCommand::BootOnce { mac, host, clear } => {
            let mac = parse_mac(&mac)?;
            let host = if clear {
                String::new()
            } else {
                host.unwrap_or_default()
            };
            let v = client.post(
                &format!("/machines/{}", encode(&mac.to_string())),
                &json!({ "boot_once": host }),
            )?;
            if args.json {
                return print_json(&v);
            }
            let next = v
                .get("next_boot")
                .and_then(Value::as_str)
                .context("the appliance's answer has no next_boot (is it the same version?)")?;
            println!("{mac}'s next boot: {next}.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `flakeboot machines`.
fn machines(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get("/machines")?;
    if json {
        return print_json(&v);
    }
    print!(
        "{}",
        tables::machines(&typed::<Vec<Machine>>(v, "a machine list")?)
    );
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot lan dhcp-servers`.
fn lan(client: &ApiClient, args: crate::cli::LanArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        crate::cli::LanCommand::DhcpServers => {
            let v = client.get("/lan/dhcp-servers")?;
            if args.json {
                return print_json(&v);
            }
            print!(
                "{}",
                tables::dhcp_servers(&typed::<
                    Vec<flakeboot_appliance::dhcp_servers::DhcpServerView>,
                >(v, "a DHCP server list")?)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `flakeboot leases`.
fn leases(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get("/leases")?;
    if json {
        return print_json(&v);
    }
    print!(
        "{}",
        tables::leases(&typed::<Vec<Lease>>(v, "a lease list")?)
    );
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot health`: exit 0 once the daemon serves (the A/B update blesses a slot on it).
fn health(client: &ApiClient) -> anyhow::Result<ExitCode> {
    let v = client.get("/health")?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot deploy-key`: the public key line alone (ready for `authorized_keys` or a forge).
fn deploy_key(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get("/deploy-key")?;
    if json {
        return print_json(&v);
    }
    let key: flakeboot_appliance::wire::DeployKey = typed(v, "a deploy key")?;
    println!("{}", key.public_key);
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot access-token list|set|remove`.
fn access_token(client: &ApiClient, args: crate::cli::AccessTokenArgs) -> anyhow::Result<ExitCode> {
    use crate::cli::AccessTokenCommand;
    match args.command {
        AccessTokenCommand::List => {
            let v = client.get("/access-tokens")?;
            if args.json {
                return print_json(&v);
            }
            let tokens: Vec<flakeboot_appliance::wire::AccessToken> =
                typed(v, "an access token list")?;
            print!("{}", tables::access_tokens(&tokens));
        }
        AccessTokenCommand::Set { host } => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("reading the token from standard input")?;
            let token = token.trim();
            if token.is_empty() {
                anyhow::bail!(
                    "no token on standard input: `flakeboot access-token set {host} < token-file`"
                );
            }
            client.post(
                "/access-tokens",
                &serde_json::json!({ "host": host, "token": token }),
            )?;
            println!("access token for {host} saved: the next nix run uses it");
        }
        AccessTokenCommand::Remove { host } => {
            client.delete(&format!("/access-tokens/{}", encode(&host)))?;
            println!("access token for {host} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot audit`.
fn audit(client: &ApiClient, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let v = client.get(&format!("/audit?limit={limit}"))?;
    if json {
        return print_json(&v);
    }
    print!(
        "{}",
        tables::audit(&typed::<Vec<AuditEntry>>(v, "an audit log")?)
    );
    Ok(ExitCode::SUCCESS)
}

/// `flakeboot events`.
fn events(client: &ApiClient, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let path = match &args.mac {
        Some(mac) => {
            let mac: MacAddr = mac
                .parse()
                .map_err(|e| anyhow::anyhow!("{mac:?} is not a MAC address: {e}"))?;
            format!(
                "/machines/{}/events?limit={}",
                encode(&mac.to_string()),
                args.limit
            )
        }
        None => format!("/events?limit={}", args.limit),
    };
    let v = client.get(&path)?;
    if args.json {
        return print_json(&v);
    }
    print!(
        "{}",
        tables::events(&typed::<Vec<Event>>(v, "a list of boot events")?)
    );
    Ok(ExitCode::SUCCESS)
}

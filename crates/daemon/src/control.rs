//! The local control socket `<state_dir>/control.sock` (mode 0600): one JSON request per
//! connection, one JSON response. It lets `flakeboot flake ...` drive the running daemon's
//! flakes without the web UI; only root (the socket's owner) can connect.

use std::path::{Path, PathBuf};

use anyhow::Context;
use flakeboot_nix::Flakes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// Largest request accepted (a flake URL and a name fit many times over).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Answered only once every service is bound and the store is open (the socket is
    /// served after both): what an A/B update waits for before it blesses a slot.
    Health,
    List,
    Add {
        url: String,
        name: Option<String>,
    },
    Update {
        flake: String,
        wait: bool,
    },
    Build {
        flake: String,
        host: String,
        wait: bool,
    },
    Generations {
        host: String,
    },
    Rollback {
        host: String,
        generation: u32,
    },
    Unpin {
        host: String,
    },
    Cancel {
        build: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    fn ok(data: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            data,
        }
    }

    fn err(error: impl std::fmt::Display, data: serde_json::Value) -> Response {
        Response {
            ok: false,
            error: Some(error.to_string()),
            data,
        }
    }
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Bind the socket. A stale socket file is removed: the store lock proves no other daemon
/// uses this state directory.
pub fn bind(state_dir: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, flakes: Flakes, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "control socket accept failed");
                    continue;
                }
            },
        };
        let flakes = flakes.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                result = handle(stream, flakes) => if let Err(err) = result {
                    tracing::debug!(error = %err, "control connection failed");
                }
            }
        });
    }
}

async fn handle(stream: UnixStream, flakes: Flakes) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            tracing::info!(?request, "control request");
            execute(request, &flakes).await
        }
        Err(err) => Response::err(format!("bad request: {err}"), serde_json::Value::Null),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

async fn execute(request: Request, flakes: &Flakes) -> Response {
    match run(request, flakes).await {
        Ok(response) => response,
        Err(err) => Response::err(format!("{err:#}"), serde_json::Value::Null),
    }
}

async fn run(request: Request, flakes: &Flakes) -> anyhow::Result<Response> {
    let f = flakes.clone();
    let data = match request {
        Request::Health => serde_json::json!({
            "healthy": true,
            "store": "open",
            "services": "bound",
            "version": env!("CARGO_PKG_VERSION"),
        }),
        Request::List => {
            let store = f.runner().store().clone();
            serde_json::to_value(tokio::task::spawn_blocking(move || store.flakes()).await??)?
        }
        Request::Add { url, name } => serde_json::to_value(f.add(&url, name.as_deref()).await?)?,
        Request::Update { flake, wait } => {
            let builds = f.update(&flake).await?;
            return Ok(finish_builds(flakes, builds, wait).await);
        }
        Request::Build { flake, host, wait } => {
            let id = tokio::task::spawn_blocking(move || f.build(&flake, &host)).await??;
            return Ok(finish_builds(flakes, vec![id], wait).await);
        }
        Request::Generations { host } => {
            let name = host.clone();
            let generations = tokio::task::spawn_blocking(move || f.generations(&name)).await??;
            // What machines assigned to this host boot now: the pinned generation, else the newest.
            let current = flakes.current().boot(&host, false).ok().flatten();
            let mut list = Vec::with_capacity(generations.len());
            for g in &generations {
                let mut value = serde_json::to_value(g)?;
                let is_current = current.as_ref().is_some_and(|c| c.generation == g.number);
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("current".into(), is_current.into());
                    obj.insert(
                        "pinned".into(),
                        (is_current && current.as_ref().is_some_and(|c| c.pinned)).into(),
                    );
                }
                list.push(value);
            }
            serde_json::Value::Array(list)
        }
        Request::Rollback { host, generation } => {
            tokio::task::spawn_blocking(move || f.rollback(&host, generation)).await??;
            serde_json::Value::Null
        }
        Request::Unpin { host } => {
            tokio::task::spawn_blocking(move || f.unpin(&host)).await??;
            serde_json::Value::Null
        }
        Request::Cancel { build } => serde_json::json!({ "cancelled": f.runner().cancel(build)? }),
    };
    Ok(Response::ok(data))
}

/// The builds' ids, or (with `wait`) their records once they all ended; not ok when any failed.
async fn finish_builds(flakes: &Flakes, builds: Vec<u64>, wait: bool) -> Response {
    if !wait {
        return Response::ok(serde_json::json!({ "builds": builds }));
    }
    let mut records = Vec::new();
    let mut failed = Vec::new();
    for id in builds {
        match flakes.runner().wait(id).await {
            Ok(record) => {
                if record.state != flakeboot_store::BuildState::Succeeded {
                    failed.push(format!(
                        "build {id} ({}#{}) {:?}: {}",
                        record.flake,
                        record.host,
                        record.state,
                        record.error.clone().unwrap_or_default()
                    ));
                }
                records.push(serde_json::to_value(&record).unwrap_or_default());
            }
            Err(err) => failed.push(format!("build {id}: {err}")),
        }
    }
    let data = serde_json::json!({ "builds": records });
    if failed.is_empty() {
        Response::ok(data)
    } else {
        Response::err(failed.join("; "), data)
    }
}

/// Send one request to a running daemon and read its response.
pub async fn call(state_dir: &Path, request: &Request) -> anyhow::Result<Response> {
    let path = socket_path(state_dir);
    let mut stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "cannot reach the daemon at {}: is `flakeboot serve` running with this --state-dir?",
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    serde_json::from_str(&reply).context("the daemon's answer is not valid JSON")
}

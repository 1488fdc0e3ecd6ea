//! `bss-control`: one binary, several entry points. The CLI is thin: every command calls the
//! same service modules the web UI uses.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::{
    config::{Config, LogFormat},
    runtime::Runtime,
    state::Services,
    store::Store,
    web,
};

#[derive(Parser)]
#[command(name = "bss-control", version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_GIT_COMMIT"), ")"), about = "BSS Phase 3 control plane")]
struct Cli {
    /// Config file (TOML). Defaults to ./bss-control.toml when present.
    #[arg(long, env = "BSS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web UI (the default).
    Serve,
    /// Print the Docker engine status as JSON and exit non-zero if it does not answer.
    Engine,
    /// Print the effective configuration (after file + environment) and exit.
    Config,
    /// Provision the stack from the compose files, in dependency order, and wait for it.
    Up,
    /// Stop and remove the stack's containers (and its volumes with --volumes).
    Down {
        #[arg(long)]
        volumes: bool,
    },
    /// Print each service's state and health (JSON with --json).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run the Phase 3 verification suite against the running stack; exit 1 if a check fails.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Run the Kafka demo (starts both processors in this process); exit 1 unless every
    /// event is accounted for.
    Demo {
        #[arg(long, default_value_t = 2000)]
        events: u64,
        /// Events per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// One malformed event every N (0: none).
        #[arg(long, default_value_t = 50)]
        malformed_every: u64,
        #[arg(long)]
        json: bool,
    },
    /// Run a fault drill against the running stack (starts both processors and the healer
    /// in this process); exit 1 when the drill's expectation fails. NAME is one of
    /// broker-kill, broker-isolate, broker-slow-link, processor-crash, replica-stop, replica-pause,
    /// primary-stop, haproxy-stop, alertmanager-down-while-firing, alertmanager-kill,
    /// envoy-upstream-fail, or `all` (each in turn, then a table).
    Drill {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Manage users of the shared (sign-in) mode.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Make the stack's certificates (mutual TLS between the stack and the control plane)
    /// in `pki/` beside the compose file, unless a valid set is there; `up` does this too.
    /// Run it before a plain `docker compose up` of the same file.
    Pki,
    /// Copy the control plane's state (users, audit log, run histories) to FILE, safely
    /// while a server runs; FILE must not exist.
    Backup { file: std::path::PathBuf },
    /// Replace the state with the backup FILE; refused while a server runs on the store.
    /// The replaced store is kept beside it (`<store>.before-restore-<time>`).
    Restore { file: std::path::PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from stdin (first line), never from arguments.
    Add {
        #[arg(long)]
        name: String,
        /// viewer, operator or admin
        #[arg(long)]
        role: String,
    },
}

fn main() -> anyhow::Result<()> {
    // Server-side rendering of a long page (the Drills page after a dozen drills: one
    // deeply nested view per run) overflowed a worker's default 2 MiB stack in the debug
    // build, and a stack overflow aborts the whole process. 16 MiB per worker is reserved
    // address space, paid for only as far as it is used.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 * 1024 * 1024)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    // The stack commands print their own progress; keep the log to warnings unless asked.
    if matches!(cli.command, Some(Command::Up | Command::Down { .. } | Command::Status { .. } | Command::Verify { .. } | Command::Demo { .. } | Command::Drill { .. }))
        && std::env::var_os("BSS_LOG").is_none()
    {
        config.log.filter = "warn".into();
    }
    init_tracing(&config);

    let command = cli.command.unwrap_or(Command::Serve);
    if config.runtime.backend == server::config::Backend::Swarm {
        match command {
            cmd @ (Command::Up | Command::Down { .. } | Command::Status { .. }) => return swarm_cli(config, cmd).await,
            Command::Drill { .. } => anyhow::bail!(
                "runtime.backend = \"swarm\" drives `serve`, `up`, `down`, `status`, `verify`, `demo` and `config`; the drills run with the engine backend (README: Several hosts)"
            ),
            _ => {}
        }
    }
    match command {
        Command::Serve => serve(config).await,
        Command::Engine => {
            let status = Runtime::new(config.docker.host.as_deref()).engine_status().await;
            println!("{}", serde_json::to_string_pretty(&status)?);
            if !status.reachable() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Config => {
            println!("{}", config.redacted());
            Ok(())
        }
        cmd @ (Command::Up | Command::Down { .. } | Command::Status { .. }) => stack_cli(config, cmd).await,
        Command::Verify { json } => verify_cli(config, json).await,
        Command::Demo { events, rate, malformed_every, json } => demo_cli(config, events, rate, malformed_every, json).await,
        Command::Drill { name, json } => drill_cli(config, name, json).await,
        Command::Pki => {
            let pki = server::pki::Pki::for_config(&config);
            let what = match pki.ensure()? {
                server::pki::Ensured::Made => "made",
                server::pki::Ensured::Existing => "kept (valid)",
            };
            eprintln!("{}: {what}", pki.dir().display());
            Ok(())
        }
        Command::Backup { file } => {
            let store = Store::open(&config.store.path).await?;
            let held = store.backup(&file).await?;
            store.audit("cli", "store.backup", &file.display().to_string(), "ok", serde_json::json!({ "holds": held.to_string() })).await?;
            eprintln!("backed up {} to {}: {held}", config.store.path.display(), file.display());
            Ok(())
        }
        Command::Restore { file } => {
            let held = server::store::backup::restore(&file, &config.store.path).await?;
            Store::open(&config.store.path).await?.audit("cli", "store.restore", &file.display().to_string(), "ok", serde_json::json!({ "holds": held.to_string() })).await?;
            eprintln!("restored {} from {}: {held}", config.store.path.display(), file.display());
            Ok(())
        }
        Command::User { command: UserCommand::Add { name, role } } => {
            let role = app::api::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role must be viewer, operator or admin, not {role:?}"))?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = Store::open(&config.store.path).await?;
            let auth = server::auth::Auth::new(store.clone(), true, std::time::Duration::from_secs(3600));
            auth.add_user(&name, role, password).await?;
            store.audit("cli", "user.add", &name, "ok", serde_json::json!({ "role": role.as_str() })).await?;
            eprintln!("user {name} added with role {}", role.as_str());
            Ok(())
        }
    }
}

/// Services for a one-shot CLI command (no web server, no healer).
async fn cli_services(config: Config) -> anyhow::Result<std::sync::Arc<Services>> {
    let store = Store::open(&config.store.path).await?;
    let runtime = Runtime::new(config.docker.host.as_deref());
    Ok(Services::new(config, runtime, store))
}

/// `bss-control verify`: the same suite as the Verify page; steps on stderr as they finish.
async fn verify_cli(config: Config, json: bool) -> anyhow::Result<()> {
    let services = cli_services(config).await?;
    // The processor check needs the processors: run them here for the duration.
    for n in services.streams.names() {
        let _ = services.streams.start(&n);
    }
    let sampler = tokio_util::sync::CancellationToken::new();
    tokio::spawn(services.streams.clone().run_sampler(sampler.clone()));
    // On a swarm: where the stack's tasks run, before the first check asks, then followed.
    if let Ok(swarm) = &services.swarm {
        let (s, n) = swarm.placement().await?;
        services.tasks.replace(server::runtime::follow::addresses(&s, &n));
        tokio::spawn(server::runtime::follow::follow(swarm.clone(), services.tasks.clone(), sampler.clone()));
    }
    // Envoy's upstream and Prometheus' `bss-control` target, for the run (when no `serve`
    // holds the port already: then that process is the one they reach).
    tokio::spawn(server::web::serve_stack_listener(services.clone()));
    let run = services.run_verify("cli").await;
    services.streams.stop_all().await;
    sampler.cancel();
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!("{}", server::verify::table(&run.checks));
    }
    services.store.audit("cli", "verify.finished", &run.status, "ok", serde_json::json!({"summary": server::verify::summary(&run.checks)})).await?;
    if run.status != "passed" {
        std::process::exit(1);
    }
    Ok(())
}

/// A token cancelled by Ctrl-C (the CLI's long runs stop cleanly and are stored).
fn cancel_on_ctrl_c() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    cancel
}

/// `bss-control demo`: the Kafka demo with both processors in this process.
async fn demo_cli(config: Config, events: u64, rate: u64, malformed_every: u64, json: bool) -> anyhow::Result<()> {
    server::demo::validate(events, rate, malformed_every).map_err(|e| anyhow::anyhow!(e))?;
    let services = cli_services(config).await?;
    for n in services.streams.names() {
        let _ = services.streams.start(&n);
    }
    let state = std::sync::Arc::new(std::sync::Mutex::new(server::demo::new_run("cli", events, rate, malformed_every)));
    let cancel = cancel_on_ctrl_c();
    let progress = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let s = state.lock().unwrap().clone();
                eprintln!("  {:>6.1} s  produced {:>7}  processed {:>7}  dlq {:>5}", s.elapsed_ms as f64 / 1000.0, s.produced, s.processed, s.dlq);
            }
        })
    };
    let run = services.run_demo(state, cancel).await;
    progress.abort();
    services.streams.stop_all().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        println!("demo {}: {} ({})", run.status, server::demo::summary(&run), run.message);
    }
    if run.status != "passed" {
        std::process::exit(1);
    }
    Ok(())
}

/// `bss-control drill NAME|all`: drills with both processors and the healer in this
/// process, each timeline on stderr as it happens; Ctrl-C cancels (and undoes the fault).
/// `all` runs every drill in turn and prints the table (JSON: the list of runs).
async fn drill_cli(config: Config, name: String, json: bool) -> anyhow::Result<()> {
    let drills: Vec<&'static server::drills::Drill> =
        if name == "all" { server::drills::DRILLS.iter().collect() } else { vec![server::drills::find(&name).map_err(|e| anyhow::anyhow!(e))?] };
    let every = humantime::parse_duration(&config.stack.heal_interval).unwrap_or(std::time::Duration::from_secs(10));
    let services = cli_services(config).await?;
    for line in server::drills::undo_pending(&services).await {
        eprintln!("  {line}");
    }
    for n in services.streams.names() {
        let _ = services.streams.start(&n);
    }
    let background = tokio_util::sync::CancellationToken::new();
    tokio::spawn(services.db.clone().run(background.clone()));
    tokio::spawn(services.clone().gate_writes_on_engine_events(background.clone()));
    if let Ok(sup) = services.supervisor() {
        tokio::spawn(sup.run(background.clone(), every));
    }
    // Envoy's upstream, for the drill that fails it (when no `serve` holds its port: then
    // that drill says it cannot apply its fault from here).
    tokio::spawn(server::web::serve_stack_listener(services.clone()));
    let cancel = cancel_on_ctrl_c();
    let mut runs = vec![];
    for drill in drills {
        if cancel.is_cancelled() {
            break;
        }
        eprintln!("drill {}: {}", drill.name, drill.title);
        let state = std::sync::Arc::new(std::sync::Mutex::new(server::drills::new_run(drill, "cli")));
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let print_new = |timeline: &[app::api::TimelineEntry], shown: &std::sync::atomic::AtomicUsize| {
            for t in timeline.iter().skip(shown.load(std::sync::atomic::Ordering::SeqCst)) {
                eprintln!("  +{:>5.1} s  {}", t.at_ms as f64 / 1000.0, t.what);
            }
            shown.store(timeline.len(), std::sync::atomic::Ordering::SeqCst);
        };
        let progress = {
            let (state, shown) = (state.clone(), shown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    let timeline = state.lock().unwrap().timeline.clone();
                    print_new(&timeline, &shown);
                }
            })
        };
        let run = services.run_drill(drill, state, cancel.clone()).await;
        progress.abort();
        let _ = progress.await;
        // What the last half second added (the end of the timeline).
        print_new(&run.timeline, &shown);
        services.store.audit("cli", "drill.finished", &run.drill, &run.status, serde_json::json!({"verdict": run.verdict})).await?;
        eprintln!("drill {}", server::drills::summary(&run));
        runs.push(run);
    }
    background.cancel();
    services.streams.stop_all().await;
    if json {
        let out = if name == "all" { serde_json::to_string_pretty(&runs)? } else { serde_json::to_string_pretty(&runs.first())? };
        println!("{out}");
    } else {
        print!("{}", server::drills::table(&runs));
    }
    if runs.iter().any(|r| r.status != "passed") {
        std::process::exit(1);
    }
    Ok(())
}

/// `up` / `down` / `status` without the UI: the same supervisor, progress on stderr.
async fn stack_cli(config: Config, command: Command) -> anyhow::Result<()> {
    let services = cli_services(config).await?;
    let sup = services.stack.clone().map_err(|e| anyhow::anyhow!(e))?;
    let mut rx = sup.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            eprintln!("{:>20}  {:<10} {}", ev.service, ev.kind, ev.message);
        }
    });
    let action = match command { Command::Up => "stack.up", Command::Down { .. } => "stack.down", _ => "" };
    let result = match command {
        Command::Up => sup.up().await.map_err(anyhow::Error::from),
        Command::Down { volumes } => sup.down(volumes).await.map_err(anyhow::Error::from),
        Command::Status { json } => {
            let st = sup.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                for s in &st {
                    println!("{:<22} {:<10} {:<10} restarts={} {}", s.service, s.state, s.health, s.restart_count, s.ports.join(" "));
                }
            }
            Ok(())
        }
        _ => unreachable!(),
    };
    if !action.is_empty() {
        let outcome = match &result { Ok(()) => "ok".to_string(), Err(e) => format!("error: {e}") };
        services.store.audit("cli", action, "stack", &outcome, serde_json::json!({})).await?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    printer.abort();
    result
}

/// `up` / `down` / `status` on a swarm (`runtime.backend = "swarm"`), through the manager
/// `docker.host` names; progress on stderr, audited like the engine's.
async fn swarm_cli(config: Config, command: Command) -> anyhow::Result<()> {
    use server::runtime::swarm::SwarmStack;
    let stack = SwarmStack::for_config(&config, &Runtime::new(config.docker.host.as_deref()))?;
    let progress = |service: &str, message: &str| eprintln!("{service:>28}  {message}");
    let (action, result) = match command {
        Command::Up => {
            // The stack's certificates are bind-mounted: made first, as the engine's `up` does.
            server::pki::Pki::for_config(&config).ensure()?;
            ("stack.up", stack.up(&progress).await)
        }
        Command::Down { volumes: true } => anyhow::bail!(
            "down --volumes: with the swarm backend a named volume lives on the node its task ran on, out of a manager's reach; \
             run `bss-control down`, then `docker volume rm` on each node"
        ),
        Command::Down { volumes: false } => ("stack.down", stack.down(&progress).await),
        Command::Status { json } => {
            let st = stack.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                for n in &st.nodes {
                    println!("node {:<12} {:<16} {:<8} {:<7} {}{}", n.hostname, n.addr, n.role, n.availability, n.state, if n.leader { " leader" } else { "" });
                }
                for s in &st.services {
                    let t = s.tasks.first();
                    println!(
                        "{:<28} {:<10} on {:<10} {}",
                        s.service,
                        t.map_or("no task", |t| t.state.as_str()),
                        t.map_or("-", |t| t.node.as_str()),
                        t.and_then(|t| t.error.clone()).unwrap_or_default()
                    );
                }
            }
            return Ok(());
        }
        _ => unreachable!(),
    };
    let outcome = match &result { Ok(()) => "ok".to_string(), Err(e) => format!("error: {e}") };
    let audited = async {
        let store = Store::open(&config.store.path).await?;
        store.audit("cli", action, "stack", &outcome, serde_json::json!({ "backend": "swarm" })).await
    };
    // The action's own outcome first: a failed audit write must not hide it.
    let audited: anyhow::Result<()> = audited.await.map(|_| ()).map_err(anyhow::Error::from);
    result.map_err(anyhow::Error::from)?;
    audited
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // One server per store (two would heal and act on the stack against each other), and
    // `restore` must not swap the file under a running server.
    let _lock = server::store::backup::lock_for_serving(&config.store.path, std::time::Duration::from_secs(10))?;
    let store = Store::open(&config.store.path).await?;
    let runtime = Runtime::new(config.docker.host.as_deref());
    let listen = config.server.listen;
    let auth_on = config.auth_required()?;
    let services = Services::new(config, runtime, store);
    if auth_on {
        let users = services.auth.user_count().await?;
        tracing::info!(users, "sign-in required (shared mode)");
        if users == 0 {
            eprintln!(
                "No users yet. Create the first admin (password read from stdin):\n  bss-control user add --name admin --role admin"
            );
        }
    } else {
        tracing::warn!("LOCAL MODE: sign-in disabled because the server is bound to loopback ({listen})");
    }
    services.spawn_background();
    tokio::spawn(web::serve_stack_listener(services.clone()));

    let engine = services.runtime.engine_status().await;
    match &engine.error {
        None => tracing::info!(endpoint = %engine.endpoint, version = ?engine.version, "docker engine answers"),
        Some(e) => tracing::warn!(endpoint = %engine.endpoint, error = %e, "no docker engine; the UI will say so"),
    }
    services
        .store
        .audit("system", "server.start", &listen.to_string(), "ok", serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
        .await?;

    let app = web::router(services.clone());
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("serving on http://{listen}");
    let stop = services.shutdown.clone();
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            web::shutdown_signal().await;
            // Background work stops and SSE streams end, so connections can drain.
            stop.cancel();
        })
        .await?;
    // Processors drain what is in flight and commit their offsets before the process ends.
    services.streams.stop_all().await;
    services.store.audit("system", "server.stop", &listen.to_string(), "ok", serde_json::json!({})).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    // Logs on stderr: stdout is the commands' output (`verify --json`, `status --json`),
    // which a warning from a client library must not corrupt.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

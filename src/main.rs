//! The `verdict` command: `verdict [--config FILE]` serves; `verdict check --config FILE`
//! validates a configuration and prints its first problem in one line; `verdict revoke`
//! appends a revocation to the fleet's shared log.
//!
//! Takes: command-line arguments and `VERDICT_CONFIG`, `RUST_LOG`. Returns: exit status 0
//! on a clean stop or a valid configuration, non-zero otherwise. Must never: serve a demo
//! configuration without saying so in the log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use verdict::config::{Config, Source};
use verdict::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "verdict",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("VERDICT_GIT_COMMIT"),
        ", ",
        env!("VERDICT_BUILD_PROFILE"),
        " build)"
    ),
    about = "Forward-auth decision service",
    after_help = "Logging: RUST_LOG filters what is logged (default \"info\": one line per decision). \
RUST_LOG=debug adds why each decision was made (route, readings, each authorizer's answer); \
RUST_LOG=verdict::decision=warn keeps only refused peers and errors. [log] format = \"json\" \
in the configuration writes one JSON object per line. No credential is ever logged."
)]
struct Cli {
    /// Configuration file (TOML or YAML). `serve` without one serves a loopback-only demo;
    /// `check` needs one; `init` writes one (default verdict.toml).
    #[arg(long, short, env = "VERDICT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve decisions (the default).
    Serve,
    /// Validate a configuration file (--config FILE, required) and exit.
    Check,
    /// Write a starting configuration (--config FILE, default verdict.toml) with one
    /// freshly made token, printed once; never overwrites a file.
    Init,
    /// Work with static tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Say what verdict would decide for one request (--config FILE), offline: its
    /// readings, the route each picks, the authorizers' answers that need no network
    /// (static tokens, JWTs with local keys) and the outcome. No credential is printed.
    Explain {
        /// https://host/path?query
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// "Name: value", repeatable (Authorization, Cookie, …)
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
    },
    /// Run a file of requests with the outcomes expected of them ([[case]] url, method,
    /// headers, client_ip, expect, route) against --config FILE, offline; exits 1 when one
    /// does not get what it expects.
    Test { file: PathBuf },
    /// Revoke across the fleet: append to the shared store's revocation log (the
    /// configuration's [shared]); every instance refuses what it names within
    /// shared.stale_after. KIND: token (a static token's digest, from `verdict token
    /// digest`), jti, jwt (the token on standard input: its jti and exp), subject ("log
    /// out everywhere": what was issued up to --before, default now), authorizer (its
    /// decisions made up to --before).
    Revoke {
        kind: String,
        /// The digest, jti, subject or authorizer name (none for jwt).
        value: Option<String>,
        /// Only this authorizer's decisions.
        #[arg(long)]
        authorizer: Option<String>,
        /// For subject and authorizer: Unix seconds (default now).
        #[arg(long)]
        before: Option<u64>,
        /// Forget the entry at this Unix second (default: the token's exp where known,
        /// else now plus shared.revocation_ttl).
        #[arg(long)]
        until: Option<u64>,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Print the SHA-256 digest a `static` authorizer stores (`sha256 = "…"`) for the
    /// token read from standard input (one line; never from the command line, where
    /// process listings and shell history would keep it).
    Digest,
}

fn main() -> ExitCode {
    verdict::init_crypto();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Check => check(cli.config),
        Command::Init => init(cli.config.unwrap_or_else(|| PathBuf::from("verdict.toml"))),
        Command::Token {
            action: TokenAction::Digest,
        } => token_digest(),
        Command::Revoke {
            kind,
            value,
            authorizer,
            before,
            until,
        } => revoke(
            cli.config,
            verdict::shared::revocation::RevocationRequest {
                kind,
                value,
                token: None,
                authorizer,
                before,
                until,
            },
        ),
        Command::Explain {
            url,
            method,
            headers,
            client_ip,
        } => dry_run(
            cli.config,
            DryRun::Explain {
                url,
                method,
                headers,
                client_ip,
            },
        ),
        Command::Test { file } => dry_run(cli.config, DryRun::Test(file)),
        Command::Serve => {
            let code = match serve(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // the logger may not be installed yet (a configuration that does not load)
                    logging::init(LogFormat::Plain);
                    log::error!("{e:#}");
                    ExitCode::FAILURE
                }
            };
            // every line, the stop's last ones included, reaches the log
            logging::flush();
            code
        }
    }
}

/// Reads one token from standard input and prints its digest.
fn token_digest() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("cannot read the token from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let token = line.trim_end_matches(['\r', '\n']);
    // the same rule as a plain `token = "…"` entry
    if token.chars().count() < 8 {
        eprintln!(
            "a token must be at least 8 characters (read {})",
            token.len()
        );
        return ExitCode::FAILURE;
    }
    println!("{}", hex::encode(verdict::digest::sha256(token.as_bytes())));
    ExitCode::SUCCESS
}

/// Writes the starting configuration with a new random token, and prints the token once.
fn init(file: PathBuf) -> ExitCode {
    let mut bytes = [0u8; 24];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        eprintln!("verdict init: no randomness for a token");
        return ExitCode::FAILURE;
    }
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = hex::encode(verdict::digest::sha256(token.as_bytes()));
    let text = verdict::config::INIT_CONFIG.replace("@DIGEST@", &digest);
    // create_new: never overwrite someone's configuration
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    match written {
        Ok(()) => {
            println!("wrote {}", file.display());
            println!("its token (shown this once; the file keeps only its digest): {token}");
            println!("serve it:  verdict --config {}", file.display());
            println!(
                "try it:    curl -i -H 'Authorization: Bearer {token}' http://127.0.0.1:8080/_resolver/resolve"
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "verdict init: {} exists; it is left as it is (give another --config FILE)",
                file.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("verdict init: cannot write {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// What a dry run does.
enum DryRun {
    Explain {
        url: String,
        method: String,
        headers: Vec<String>,
        client_ip: Option<std::net::IpAddr>,
    },
    Test(PathBuf),
}

/// The configuration a subcommand cannot run without: `missing` (exit 2) when no file is
/// named, the file's error (exit 1) when it does not load.
fn required_config(file: Option<PathBuf>, missing: &str) -> Result<(PathBuf, Config), ExitCode> {
    let Some(file) = file else {
        eprintln!("{missing}");
        return Err(ExitCode::from(2));
    };
    match Config::load(&Source {
        file: Some(file.clone()),
        env: None,
    }) {
        Ok(config) => Ok((file, config)),
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Err(ExitCode::FAILURE)
        }
    }
}

/// `verdict explain` and `verdict test`: the resolver itself, offline.
#[actix_web::main]
async fn dry_run(file: Option<PathBuf>, what: DryRun) -> ExitCode {
    let (_, config) = match required_config(file, "verdict: --config FILE is required") {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let resolver = match verdict::dryrun::offline_resolver(config) {
        Ok(resolver) => resolver,
        Err(e) => {
            eprintln!("verdict: {e}");
            return ExitCode::FAILURE;
        }
    };
    match what {
        DryRun::Explain {
            url,
            method,
            headers,
            client_ip,
        } => {
            let mut named = std::collections::BTreeMap::new();
            for header in headers {
                let Some((name, value)) = header.split_once(':') else {
                    eprintln!("verdict explain: {header:?} is not \"Name: value\"");
                    return ExitCode::from(2);
                };
                named.insert(name.trim().to_string(), value.trim().to_string());
            }
            let case = verdict::dryrun::Case {
                name: None,
                url,
                method,
                headers: named,
                client_ip,
                expect: None,
                route: None,
                dialect: None,
                body: None,
            };
            match verdict::dryrun::explain(&resolver, &case).await {
                Ok(explained) => {
                    for line in explained.lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(problem) => {
                    eprintln!("verdict explain: {problem}");
                    ExitCode::from(2)
                }
            }
        }
        DryRun::Test(cases_file) => {
            // TOML or YAML, by its extension, as the configuration is read
            let cases: verdict::dryrun::Cases = match config::Config::builder()
                .add_source(config::File::from(cases_file.as_path()).required(true))
                .build()
                .and_then(|c| c.try_deserialize())
            {
                Ok(cases) => cases,
                Err(e) => {
                    eprintln!("{}: {e}", cases_file.display());
                    return ExitCode::from(2);
                }
            };
            let (report, failed) = verdict::dryrun::test(&resolver, &cases).await;
            for line in report {
                println!("{line}");
            }
            println!("{} case(s), {failed} failed", cases.cases.len());
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Appends one revocation to the shared store named in the configuration.
#[actix_web::main]
async fn revoke(
    file: Option<PathBuf>,
    mut asked: verdict::shared::revocation::RevocationRequest,
) -> ExitCode {
    let (file, config) = match required_config(
        file,
        "verdict revoke: --config FILE is required (its [shared] names the store)",
    ) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(settings) = config.shared else {
        eprintln!(
            "{}: no [shared] section: there is no fleet log to revoke in",
            file.display()
        );
        return ExitCode::FAILURE;
    };
    if asked.kind == "jwt" {
        // the token from standard input: never from the command line
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            eprintln!("cannot read the token from standard input: {e}");
            return ExitCode::FAILURE;
        }
        asked.token = Some(line.trim().to_string());
    }
    let now = verdict::clock::Clock::system().unix_ms();
    let entry = match asked.entry(now, settings.revocation_ttl) {
        Ok(entry) => entry,
        Err(problem) => {
            eprintln!("verdict revoke: {problem}");
            return ExitCode::from(2);
        }
    };
    let description = entry.describe();
    match verdict::shared::publish_once(&settings, &entry).await {
        Ok(id) => {
            println!("revoked {description} (log entry {id})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("verdict revoke: {description}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: Option<PathBuf>) -> ExitCode {
    let Some(file) = file else {
        eprintln!("verdict check: --config FILE is required (`verdict init` writes one)");
        return ExitCode::from(2);
    };
    match Config::load(&Source {
        file: Some(file.clone()),
        env: None,
    }) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("{}: warning: {warning}", file.display());
            }
            println!(
                "{}: ok ({} authorizers, decisions on {}, admin on {})",
                file.display(),
                config.authorizers.len(),
                config.server.listen,
                config.server.admin_listen
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

#[actix_web::main]
async fn serve(file: Option<PathBuf>) -> anyhow::Result<()> {
    let source = Source {
        file: file.clone(),
        env: None,
    };
    let config = Config::load(&source).context("configuration")?;
    logging::init(config.log_format);
    for warning in &config.warnings {
        log::warn!("configuration: {warning}");
    }
    let open_files = verdict::lifecycle::raise_open_file_limit();
    log::info!("open files: at most {open_files}");
    if config.demo {
        log::warn!(
            "serving the embedded DEMO configuration (token \"demo-token\" is user \"demo\"); pass --config FILE for real use"
        );
    } else if let Some(file) = &file {
        log::info!("configuration {} loaded", file.display());
    }
    // SIGHUP reloads from the same file and the process environment.
    let launch = verdict::lifecycle::Launch {
        signals: Some(source),
        open_files: Some(open_files),
        ..Default::default()
    };
    let running = verdict::lifecycle::bind(config, launch)
        .await
        .context("binding listeners")?;
    log::info!(
        "decisions on http://{}, health on http://{}/healthz",
        running.decision_addr,
        running.admin_addr
    );
    if let Some(grpc) = running.grpc_addr {
        log::info!("Envoy's gRPC authorization service on {grpc}");
    }
    running.run().await.context("serving")
}

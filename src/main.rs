//! The `portcullis` command: load an agentgateway config, then serve it (or only validate it).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use portcullis::{ConfigSource, RunOptions};

/// Thread-per-core io_uring edge proxy with spec-compliant MCP Authorization.
/// Reads agentgateway's YAML config (binds → listeners → routes → backends/policies).
#[derive(Parser, Debug)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (YAML), watched for changes and reloaded.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "PATH",
        conflicts_with = "config"
    )]
    file: Option<PathBuf>,
    /// Inline config (YAML).
    #[arg(short = 'c', long = "config", value_name = "INLINE_YAML")]
    config: Option<String>,
    /// Check the config and exit: 0 when valid, 64 with the errors otherwise.
    #[arg(long)]
    validate_only: bool,
    /// Worker threads (default: config.workerThreads, else every CPU available to the process).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Pin worker i to CPU i.
    #[arg(long)]
    pin_cpus: bool,
    /// Share the listening ports with another running Portcullis, for a zero-downtime upgrade:
    /// start the new one with this flag, then SIGTERM the old one. The stats and readiness
    /// addresses are shared too when both were started with it (the admin address never is).
    /// Without it, a port that anything else listens on is an error at start.
    #[arg(long)]
    reuse_port: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the JSON Schema of the config Portcullis accepts (for editors: save it and point
    /// `# yaml-language-server: $schema=<file>` at it).
    Schema,
}

/// Exit code for an invalid configuration (EX_USAGE, as linkerd uses).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        println!("{}", portcullis::config_schema());
        return ExitCode::SUCCESS;
    }
    let mut source = match (&cli.file, &cli.config) {
        (Some(f), _) => ConfigSource::File(f.clone(), Vec::new()),
        (None, Some(c)) => ConfigSource::Inline(c.clone()),
        (None, None) => {
            eprintln!("error: give a config with -f/--file PATH or -c/--config INLINE_YAML");
            return ExitCode::from(2);
        }
    };
    let loaded = match &mut source {
        ConfigSource::File(path, text) => match std::fs::read(&*path) {
            Ok(bytes) => {
                let loaded = portcullis::load_bytes(&bytes, path.parent());
                *text = bytes;
                loaded
            }
            Err(e) => {
                eprintln!("error: cannot read config file {}: {e}", path.display());
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        },
        ConfigSource::Inline(text) => portcullis::load_bytes(text.as_bytes(), None),
    };
    let snapshot = match loaded {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("error: invalid configuration:\n{errors}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.validate_only {
        for w in &snapshot.warnings {
            eprintln!("warning: {w}");
        }
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let _guard = portcullis::init_logging(&snapshot.settings.log);
    let code = portcullis::run(
        snapshot,
        RunOptions {
            source,
            workers: cli.workers.map(usize::from),
            pin_cpus: cli.pin_cpus,
            watch_interval: Duration::from_millis(250),
            reuse_port: cli.reuse_port,
        },
    );
    ExitCode::from(code.clamp(0, 255) as u8)
}

//! The `presenced` binary: command line, logger, settings, `app::run`, exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use presenced::{app, config::Settings};

// mimalloc: a SIP server allocates many small, short-lived strings per message.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: presenced [migrate] [--config FILE] [--check-config] [--version]\n\
  migrate         apply the database migrations for store.url and exit";

enum Command {
    Run {
        config: PathBuf,
        check_only: bool,
        migrate_only: bool,
    },
    Version,
    Help,
}

fn parse_args() -> Result<Command, String> {
    let mut config = PathBuf::from("config/presenced.toml");
    let mut check_only = false;
    let mut migrate_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "migrate" => migrate_only = true,
            "--config" | "-c" => {
                config = args.next().ok_or("--config needs a file")?.into();
            }
            "--check-config" => check_only = true,
            "--version" | "-V" => return Ok(Command::Version),
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Command::Run {
        config,
        check_only,
        migrate_only,
    })
}

fn main() -> ExitCode {
    let (config, check_only, migrate_only) = match parse_args() {
        Ok(Command::Run {
            config,
            check_only,
            migrate_only,
        }) => (config, check_only, migrate_only),
        Ok(Command::Version) => {
            println!("presenced {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("presenced: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(&config).and_then(|s| app::check(&s).map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            // One line, even for a TOML error that comes with a source snippet.
            let one_line = e
                .to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "|")
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("presenced: {}: {one_line}", config.display());
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("presenced: {}: configuration is valid", config.display());
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new()
        .format_timestamp_millis()
        .parse_filters(&settings.log.level)
        .parse_env("RUST_LOG")
        .init();
    if migrate_only {
        return match presenced::store::open_any(
            &settings.store.url,
            presenced::store::SqliteOptions::of(&settings.store),
        ) {
            Ok(_) => {
                println!(
                    "presenced: migrations applied to {}",
                    presenced::store::redact(&settings.store.url)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("presenced: {e}");
                ExitCode::from(2)
            }
        };
    }
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let shutdown = presenced::shutdown_signal()?;
        let store = app::open_store(&settings)?;
        let sockets = app::bind(&settings)?;
        app::run(settings, store, sockets, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            // A configuration or database that cannot be used is the operator's to fix: 2.
            match e {
                app::StartError::Store(_) | app::StartError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

//! The `gtrace` binary: parse flags, dispatch to the library, turn errors into exit codes.

use std::process::ExitCode;

use clap::Parser as _;
use tracer_user::cli::{
    Cli, Command, doctor, dump, exit, inspect, leaks, panics, profile, record, report, symbolize,
    trace,
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().filter_or("GTRACE_LOG", "warn"))
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Record(args) => record::run(args),
        Command::Report(args) => report::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Dump(args) => run_dump(args),
        Command::Inspect(args) => inspect::run(args).map(|()| exit::Exit::Ok),
        Command::Leaks(args) => leaks::run(args, &mut std::io::stdout().lock()),
        Command::Profile(args) => profile::run(args),
        Command::Symbolize(args) => symbolize::run(args).map(|()| exit::Exit::Ok),
        Command::Panics(args) => panics::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err).into(),
    }
}

fn run_dump(args: &dump::DumpArgs) -> anyhow::Result<exit::Exit> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stats = match dump::run(args, &mut out) {
        Err(e) if e.is_broken_pipe() => return Ok(exit::Exit::Ok),
        r => r?,
    };
    out.flush()?;
    if let Some(line) = dump::summary(&stats) {
        eprintln!("{line}");
    }
    Ok(exit::Exit::Ok)
}

/// `gtrace … | head` closing the pipe is not an error (ripgrep does the same).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

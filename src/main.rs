//! The `billable` binary: parse the command line, start logging, run one command.

use std::process::ExitCode;

use clap::Parser;

// Parsing a mailbox allocates and frees many small strings on several threads;
// mimalloc does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = billable::cli::Cli::parse();
    // One TLS crypto provider for every HTTPS client (Gmail, the LLM, Supabase).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Logs go to stderr so stdout stays clean for tables and JSON.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person reading a terminal, never in captured logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(billable::cli::run(cli));
    // Readers on blocking threads stop once their listing is dropped; one stuck in a
    // read (a dead network mount) must not keep the process from exiting, which
    // dropping the runtime would wait for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

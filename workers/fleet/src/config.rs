//! The launcher's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    about = "Runs the fleet's workers in one process"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every worker in this process on the configured backend until SIGTERM/SIGINT.
    Run {
        #[command(flatten)]
        hl7: hl7_ingest::WorkerConfig,
    },
    /// On a fresh local backend: create queues, a bus rule and a table, seed generated ADT
    /// messages (well-formed and malformed), process them and print what happened.
    Demo {
        /// Directory for the local backend (SQLite file + objects). Default: a new temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Messages to seed.
        #[arg(long, default_value_t = 24)]
        messages: usize,
        /// Of which malformed.
        #[arg(long, default_value_t = 5)]
        malformed: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

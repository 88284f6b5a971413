//! The command line every worker binary shares: its own subcommands, the backend group, any
//! engine group (doc-pipeline's OCR and extractor) and the worker's config, flattened in that
//! order. Each binary names itself; the shape is written once.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use fleet_runtime::BackendArgs;

/// No extra flag group (the default for workers without engines).
#[derive(Debug, Clone, Default, Args)]
pub struct NoEngines {}

/// A worker binary's command line.
#[derive(Debug, Parser)]
#[command(version)]
pub struct WorkerCli<C, W, E = NoEngines>
where
    C: Subcommand,
    W: Args,
    E: Args,
{
    #[command(subcommand)]
    pub command: Option<C>,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub engines: E,
    #[command(flatten)]
    pub worker: W,
}

impl<C: Subcommand, W: Args, E: Args> WorkerCli<C, W, E> {
    /// Parse the process arguments as the binary `name` (exits with clap's message on error).
    pub fn parse_as(name: &'static str, about: &'static str) -> Self {
        let matches = Self::command().name(name).about(about).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

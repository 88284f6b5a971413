//! `fleet.toml`: one file for the whole fleet. `[backend]` holds the backend options, and each
//! worker has a section of its own (`[hl7-ingest]`, `[doc-pipeline]`, `[notify]`,
//! `[mllp-gateway]`) whose keys
//! are that worker's flag names, parsed by the worker's own clap definitions
//! ([`crate::sections`]), so a key means exactly what the flag means and an unknown one is
//! refused. A worker without a section is not started. Without a file, each worker is
//! configured from the environment alone and started when its queue is set (the gateway: when
//! `FLEET_MLLP_LISTEN` is set).

use std::path::Path;

use anyhow::Context;
use fleet_backends::DocEngineArgs;
use fleet_runtime::BackendArgs;

use crate::sections;

/// The sections `fleet.toml` may have. `[fleet]` holds the fleet-level options of `fleet run`
/// (the health page: `health-addr`, `status-interval-secs`).
pub const SECTIONS: [&str; 6] = [
    "fleet",
    "backend",
    hl7_ingest::WORKER,
    doc_pipeline::WORKER,
    notify::WORKER,
    mllp_gateway::WORKER,
];

/// doc-pipeline's section: its worker config and its engine options.
#[derive(Debug, Clone, clap::Args)]
pub struct DocSection {
    #[command(flatten)]
    pub engines: DocEngineArgs,
    #[command(flatten)]
    pub worker: doc_pipeline::WorkerConfig,
}

/// What `fleet run` runs on: the backend and the workers to start.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `[fleet]`: the health page's address and sampling interval.
    pub page: crate::page::PageArgs,
    pub backend: BackendArgs,
    pub hl7: Option<hl7_ingest::WorkerConfig>,
    pub docs: Option<DocSection>,
    pub notify: Option<notify::WorkerConfig>,
    pub gateway: Option<mllp_gateway::GatewayConfig>,
}

impl FleetConfig {
    /// From the text of a `fleet.toml`.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let doc: toml::Table = text.parse().context("fleet.toml is not valid TOML")?;
        for (key, value) in &doc {
            if !SECTIONS.contains(&key.as_str()) {
                anyhow::bail!(
                    "fleet.toml: unknown section [{key}]; expected one of {}",
                    SECTIONS.map(|s| format!("[{s}]")).join(", ")
                );
            }
            if !value.is_table() {
                anyhow::bail!("fleet.toml: {key} must be a section ([{key}]), not a value");
            }
        }
        let section = |name: &str| doc.get(name).and_then(toml::Value::as_table);
        let empty = toml::Table::new();
        Ok(Self {
            page: sections::from_toml("[fleet]", section("fleet").unwrap_or(&empty))?,
            backend: sections::from_toml("[backend]", section("backend").unwrap_or(&empty))?,
            hl7: section(hl7_ingest::WORKER)
                .map(|t| sections::from_toml("[hl7-ingest]", t))
                .transpose()?,
            docs: section(doc_pipeline::WORKER)
                .map(|t| sections::from_toml("[doc-pipeline]", t))
                .transpose()?,
            notify: section(notify::WORKER)
                .map(|t| sections::from_toml("[notify]", t))
                .transpose()?,
            gateway: section(mllp_gateway::WORKER)
                .map(|t| sections::from_toml("[mllp-gateway]", t))
                .transpose()?,
        })
    }

    /// From a file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in {}", path.display()))
    }

    /// From the environment only: every worker whose queue is set.
    pub fn from_env() -> anyhow::Result<Self> {
        let hl7: hl7_ingest::WorkerConfig = sections::parse("hl7-ingest (environment)", &[])?;
        let docs: DocSection = sections::parse("doc-pipeline (environment)", &[])?;
        let notify: notify::WorkerConfig = sections::parse("notify (environment)", &[])?;
        let gateway: mllp_gateway::GatewayConfig =
            sections::parse("mllp-gateway (environment)", &[])?;
        Ok(Self {
            page: sections::parse("fleet (environment)", &[])?,
            backend: sections::parse("backend (environment)", &[])?,
            hl7: hl7.queue.is_some().then_some(hl7),
            docs: docs.worker.queue.is_some().then_some(docs),
            notify: notify.queue.is_some().then_some(notify),
            gateway: fleet_core::env::is_set(fleet_core::env::MLLP_LISTEN).then_some(gateway),
        })
    }

    /// The names of the workers this config starts, in start order.
    pub fn workers(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.hl7.is_some() {
            w.push(hl7_ingest::WORKER);
        }
        if self.docs.is_some() {
            w.push(doc_pipeline::WORKER);
        }
        if self.notify.is_some() {
            w.push(notify::WORKER);
        }
        if self.gateway.is_some() {
            w.push(mllp_gateway::WORKER);
        }
        w
    }

    /// Every (worker, queue) the configured workers consume; a worker's missing queue is
    /// reported as the error its own start would give.
    pub fn queues(&self) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        if let Some(c) = &self.hl7 {
            out.push((hl7_ingest::WORKER, c.identities()?.queue));
        }
        if let Some(c) = &self.docs {
            let ids = c.worker.identities()?;
            out.push((doc_pipeline::WORKER, ids.queue));
            if let Some(q) = ids.completion_queue {
                out.push((doc_pipeline::WORKER, q));
            }
        }
        if let Some(c) = &self.notify {
            out.push((notify::WORKER, c.identities()?.0));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_without_a_section_is_not_started() {
        let c = FleetConfig::from_toml(
            "[backend]\nbackend = \"local\"\nlocal-db = \"/x/db.sqlite\"\n\n[notify]\nqueue = \"n\"\ntable = \"t\"\nrules = \"r.toml\"\n",
        )
        .unwrap();
        assert_eq!(c.workers(), ["notify"]);
        assert_eq!(c.backend.local_db, Path::new("/x/db.sqlite"));
        assert_eq!(c.queues().unwrap(), [("notify", "n".to_string())]);
    }

    #[test]
    fn unknown_sections_and_keys_are_refused() {
        let e = FleetConfig::from_toml("[hl7]\nqueue = \"q\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown section [hl7]"), "{e:#}");
        let e = FleetConfig::from_toml("[doc-pipeline]\nqueue = \"q\"\nocr-engine = \"x\"\n")
            .unwrap_err();
        assert!(format!("{e:#}").contains("--ocr-engine"), "{e:#}");
        let e = FleetConfig::from_toml("notify = 3\n").unwrap_err();
        assert!(format!("{e:#}").contains("must be a section"), "{e:#}");
    }

    #[test]
    fn the_default_local_config_starts_every_worker_on_the_stacks_queues() {
        let dir = Path::new("/srv/fleet");
        let c = FleetConfig::from_toml(&crate::local_stack::default_config(dir)).unwrap();
        assert_eq!(
            c.workers(),
            ["hl7-ingest", "doc-pipeline", "notify", "mllp-gateway"]
        );
        let gw = c.gateway.as_ref().unwrap();
        assert_eq!(gw.listen, "127.0.0.1:2575".parse().unwrap());
        assert_eq!(gw.routes[0].queue, "hl7-inbound");
        // hl7-ingest reads what the gateway offloads.
        assert_eq!(
            gw.claim_check_bucket.as_deref(),
            Some(crate::local_stack::CLAIM_CHECK_BUCKET)
        );
        assert_eq!(
            c.hl7.as_ref().unwrap().runtime.claim_check_buckets,
            [crate::local_stack::CLAIM_CHECK_BUCKET]
        );
        let queues: Vec<String> = c.queues().unwrap().into_iter().map(|(_, q)| q).collect();
        assert_eq!(queues, ["hl7-inbound", "doc-uploads", "notify-inbound"]);
        assert!(c.docs.unwrap().worker.runtime.allow_unencrypted);
    }
}

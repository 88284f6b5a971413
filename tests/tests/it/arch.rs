//! Architecture invariants checked from the manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// `cargo metadata` of the workspace: package id → name, and package id → the ids of its
/// normal (not dev, not build) dependencies.
struct Graph {
    names: BTreeMap<String, String>,
    normal: BTreeMap<String, Vec<String>>,
    /// Package name → its target kinds ("lib", "bin", ...).
    targets: BTreeMap<String, BTreeSet<String>>,
}

fn metadata() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = fleet_core::env::get(fleet_core::env::CARGO).unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        names.insert(p["id"].as_str().unwrap().to_string(), name.clone());
        let kinds = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["kind"].as_array().unwrap().iter())
            .map(|k| k.as_str().unwrap().to_string());
        targets
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(kinds);
    }
    let mut normal = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        normal.insert(node["id"].as_str().unwrap().to_string(), deps);
    }
    Graph {
        names,
        normal,
        targets,
    }
}

impl Graph {
    /// Every package `name` links in a normal build (itself included).
    fn closure(&self, name: &str) -> BTreeSet<String> {
        let start = self
            .names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no package {name} in the workspace"));
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(id) = todo.pop() {
            if seen.insert(id.clone()) {
                todo.extend(self.normal.get(&id).into_iter().flatten().cloned());
            }
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }

    /// The packages whose direct normal dependencies include `dep`.
    fn dependents(&self, dep: &str) -> BTreeSet<String> {
        self.normal
            .iter()
            .filter(|(_, deps)| deps.iter().any(|d| self.names[d] == dep))
            .map(|(id, _)| self.names[id].clone())
            .collect()
    }
}

/// Architecture Invariant: the worker libraries and the domain crates link no AWS SDK: they
/// depend on ports only, and the binaries (in `workers/fleet`) open the backend through
/// fleet-backends. Equivalent to `cargo tree -e normal -p <crate>` showing no `aws-sdk-*`.
#[test]
fn worker_libraries_and_domain_crates_link_no_aws_sdk() {
    let graph = metadata();
    for krate in [
        "hl7-ingest",
        "doc-pipeline",
        "notify",
        "fleet-runtime",
        "fleet-hl7",
        "fleet-docs",
        "fleet-notify-rules",
        "fleet-core",
        "fleet-pattern",
        "fleet-samples",
    ] {
        let sdk: Vec<String> = graph
            .closure(krate)
            .into_iter()
            .filter(|n| n.starts_with("aws-sdk-") || n == "aws-config")
            .collect();
        assert!(
            sdk.is_empty(),
            "{krate} links {sdk:?}: it must depend on ports only"
        );
    }
    // The check can see an SDK where there is one.
    assert!(graph.closure("fleet-backends").contains("aws-sdk-sqs"));
}

/// Architecture Invariant: every binary is built by the launcher crate; worker crates are
/// libraries only (a binary in a worker crate would pull the adapters into its manifest).
#[test]
fn worker_crates_are_libraries_and_the_launcher_builds_every_binary() {
    let graph = metadata();
    for krate in ["hl7-ingest", "doc-pipeline", "notify"] {
        assert!(
            !graph.targets[krate].contains("bin"),
            "{krate} has a binary target: binaries live in workers/fleet/src/bin"
        );
    }
    assert!(graph.targets["fleet"].contains("bin"));
}

/// Architecture Invariant: the test kit is a dev-dependency; only test tooling (the `tests`
/// crate and the load tool, neither of them deployed) may link it in a normal build.
#[test]
fn no_deployable_crate_depends_on_the_test_kit() {
    let graph = metadata();
    let dependents = graph.dependents("fleet-testkit");
    let allowed: BTreeSet<String> = ["tests", "loadtest"].map(String::from).into();
    assert!(
        dependents.is_subset(&allowed),
        "{:?} depend on fleet-testkit outside [dev-dependencies]",
        dependents.difference(&allowed).collect::<Vec<_>>()
    );
}

/// Architecture Invariant: only fleet-aws (the adapters) and fleet-testkit (provisioning for
/// tests) name aws-sdk-* (and aws-config / aws-smithy-*) in their manifests.
#[test]
fn only_the_aws_adapter_depends_on_the_aws_sdk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for group in ["shared", "workers"] {
        for entry in std::fs::read_dir(root.join(group)).unwrap() {
            let dir = entry.unwrap().path();
            let manifest = dir.join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            checked += 1;
            if dir.file_name().unwrap() == "fleet-testkit" {
                continue;
            }
            if dir.file_name().unwrap() == "fleet-aws" {
                assert!(
                    text.contains("aws-sdk-sqs"),
                    "fleet-aws should be the one holding the SDK"
                );
                continue;
            }
            for line in text.lines() {
                let name = line.split(['=', '.']).next().unwrap_or("").trim();
                assert!(
                    !(name.starts_with("aws-sdk-")
                        || name == "aws-config"
                        || name.starts_with("aws-smithy")),
                    "{} depends on {name}: only fleet-aws (and the test kit) may",
                    manifest.display()
                );
            }
        }
    }
    assert!(checked >= 8, "found only {checked} manifests");
}

/// Every crate folder is named like its package.
#[test]
fn crate_folders_are_named_like_their_packages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for group in ["shared", "workers"] {
        for entry in std::fs::read_dir(root.join(group)).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
                continue;
            };
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .unwrap()
                .trim_matches('"');
            assert_eq!(dir.file_name().unwrap().to_str().unwrap(), name);
        }
    }
}

//! Architecture invariants checked from the manifests.

use std::path::Path;

/// Only fleet-aws may depend on aws-sdk-* (and aws-config / aws-smithy-*).
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
                    "{} depends on {name}: only fleet-aws may",
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

//! A worker's configuration from a `fleet.toml` section, through the same clap definitions as
//! its flags: each key is a flag name (`event-bus = "fleet"` is `--event-bus=fleet`), so one
//! parser validates both, defaults are written once, environment fallbacks still apply, and an
//! unknown key is refused the way an unknown flag is.

use anyhow::Context;
use clap::Parser;

/// A worker's argument group as a whole command line.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Section<T: clap::Args> {
    #[command(flatten)]
    inner: T,
}

/// Parse `args` (flags without a program name) into `T`.
pub fn parse<T: clap::Args>(what: &str, args: &[String]) -> anyhow::Result<T> {
    Section::<T>::try_parse_from(args)
        .map(|s| s.inner)
        .map_err(|e| anyhow::anyhow!("{what}: {}", first_line(&e.to_string())))
}

/// The flags a TOML table stands for. Strings, numbers and booleans are values (`true` is a
/// bare flag, `false` leaves it out); an array repeats its flag. Nested tables are refused.
pub fn toml_to_args(what: &str, table: &toml::Table) -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let mut push = |v: &toml::Value| -> anyhow::Result<()> {
            match v {
                toml::Value::String(s) => args.push(format!("{flag}={s}")),
                toml::Value::Integer(i) => args.push(format!("{flag}={i}")),
                toml::Value::Float(f) => args.push(format!("{flag}={f}")),
                toml::Value::Boolean(true) => args.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                other => anyhow::bail!(
                    "{what}: key {key:?} has a {} value; expected a string, number or boolean",
                    other.type_str()
                ),
            }
            Ok(())
        };
        match value {
            toml::Value::Array(items) => {
                for item in items {
                    push(item)?;
                }
            }
            v => push(v)?,
        }
    }
    Ok(args)
}

/// Parse a TOML section into `T`.
pub fn from_toml<T: clap::Args>(what: &str, table: &toml::Table) -> anyhow::Result<T> {
    let args = toml_to_args(what, table)?;
    parse(what, &args).with_context(|| format!("in {what}"))
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid configuration")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn keys_are_flags_and_values_are_validated_by_the_workers_own_parser() {
        let cfg: hl7_ingest::WorkerConfig = from_toml(
            "[hl7-ingest]",
            &table(
                "queue = \"q\"\nevent_bus = \"b\"\ntable = \"t\"\nconcurrency = 3\nallow-unencrypted = true\ntimezone = \"Europe/Oslo\"",
            ),
        )
        .unwrap();
        assert_eq!(cfg.queue.as_deref(), Some("q"));
        assert_eq!(cfg.event_bus.as_deref(), Some("b"));
        assert_eq!(cfg.runtime.concurrency, Some(3));
        assert!(cfg.runtime.allow_unencrypted);
        assert_eq!(cfg.zones.timezone, chrono_tz::Europe::Oslo);
    }

    /// Issue 15, item 9: a repeatable flag is an array in the section, one flag per item, and
    /// each item is validated by the worker's parser (a bad zone refuses the section).
    #[test]
    fn item9_facility_timezones_are_an_array_of_the_repeatable_flag() {
        let cfg: hl7_ingest::WorkerConfig = from_toml(
            "[hl7-ingest]",
            &table(
                "timezone = \"America/New_York\"\nfacility-timezone = [\"NORTH=Europe/Oslo\", \"WEST=America/Los_Angeles\"]",
            ),
        )
        .unwrap();
        let zones: Vec<(&str, chrono_tz::Tz)> = cfg
            .zones
            .facility_timezone
            .iter()
            .map(|f| (f.facility.as_str(), f.zone))
            .collect();
        assert_eq!(
            zones,
            [
                ("NORTH", chrono_tz::Europe::Oslo),
                ("WEST", chrono_tz::America::Los_Angeles)
            ]
        );
        let bad = from_toml::<hl7_ingest::WorkerConfig>(
            "[hl7-ingest]",
            &table("facility_timezone = [\"NORTH=Europe/Oslo\", \"WEST=Mars/Olympus\"]"),
        )
        .unwrap_err();
        let text = format!("{bad:#}");
        assert!(
            text.contains("[hl7-ingest]") && text.contains("WEST=Mars/Olympus"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_bad_values_and_nested_tables_are_refused_with_the_section_named() {
        let unknown = from_toml::<hl7_ingest::WorkerConfig>("[hl7-ingest]", &table("queu = \"q\""))
            .unwrap_err();
        let text = format!("{unknown:#}");
        assert!(
            text.contains("[hl7-ingest]") && text.contains("--queu"),
            "{text}"
        );
        let bad =
            from_toml::<hl7_ingest::WorkerConfig>("[hl7-ingest]", &table("concurrency = \"many\""))
                .unwrap_err();
        assert!(format!("{bad:#}").contains("many"), "{bad:#}");
        let nested =
            from_toml::<hl7_ingest::WorkerConfig>("[hl7-ingest]", &table("[runtime]\nx = 1"))
                .unwrap_err();
        assert!(format!("{nested:#}").contains("table"), "{nested:#}");
    }
}

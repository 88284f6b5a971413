//! The consumer runtime: polling, retries, DLQ, heartbeat, shutdown, telemetry.

//! Rough throughput of the local backend on this machine (not a test: numbers vary by disk).
//! `cargo run --release -p fleet-local --example local_throughput`

use std::time::{Duration, Instant};

use fleet_core::Backend;
use fleet_core::ports::{BusEvent, Condition, ConditionalPut, OutgoingMessage, Record};
use fleet_local::{LocalBackend, QueueSpec};

fn rate(n: usize, t: Duration) -> String {
    format!(
        "{n} in {:.3} s = {:.0}/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    )
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc (Linux only; 0 elsewhere).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let ticks: f64 =
                rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let local = LocalBackend::open(&dir.path().join("f.sqlite"), &dir.path().join("objects"))?;
    local.create_queue("q", QueueSpec::default())?;
    local.create_queue("tap", QueueSpec::default())?;
    local.put_rule("bus", "r", r#"{"source":["s"]}"#, "tap")?;
    let q = local.queue("q").await?;
    const N: usize = 5000;

    let t = Instant::now();
    for i in 0..1000 {
        q.send(OutgoingMessage {
            body: format!("single {i}"),
            ..Default::default()
        })
        .await?;
    }
    println!("send (1 per call):          {}", rate(1000, t.elapsed()));

    let t = Instant::now();
    for c in 0..N / 10 {
        let batch: Vec<_> = (0..10)
            .map(|i| OutgoingMessage {
                body: format!("m {c} {i}"),
                ..Default::default()
            })
            .collect();
        q.send_batch(&batch).await?;
    }
    println!("send_batch (10 per call):   {}", rate(N, t.elapsed()));

    let t = Instant::now();
    let mut n = 0;
    loop {
        let got = q.receive(10, Duration::ZERO, None).await?;
        if got.is_empty() {
            break;
        }
        n += got.len();
        let receipts: Vec<_> = got.into_iter().map(|m| m.receipt).collect();
        q.delete_batch(&receipts).await?;
    }
    println!("receive 10 + delete_batch:  {}", rate(n, t.elapsed()));

    let bus = local.event_bus("bus");
    let t = Instant::now();
    for _ in 0..N / 10 {
        let events: Vec<_> = (0..10)
            .map(|i| BusEvent {
                source: "s".into(),
                detail_type: "d".into(),
                detail: format!("{{\"i\":{i}}}"),
                resources: vec![],
                time: None,
                trace_header: None,
            })
            .collect();
        bus.put_events(&events).await?;
    }
    println!("put_events (10, routed):    {}", rate(N, t.elapsed()));

    let table = local.records("t");
    let t = Instant::now();
    for i in 0..N {
        let record = Record {
            pk: format!("p{}", i % 100),
            sk: format!("s{i}"),
            order: 1,
            expires_at: None,
            data: serde_json::json!({"i": i}),
        };
        table
            .put(ConditionalPut {
                record,
                condition: Condition::NotExists,
            })
            .await?;
    }
    println!("conditional put:            {}", rate(N, t.elapsed()));

    // Receiving from the front of a deep backlog must not cost a scan of the backlog.
    let deep = local.queue("tap").await?;
    for c in 0..5000 {
        let batch: Vec<_> = (0..10)
            .map(|i| OutgoingMessage {
                body: format!("deep {c} {i}"),
                ..Default::default()
            })
            .collect();
        deep.send_batch(&batch).await?;
    }
    let t = Instant::now();
    let mut n = 0;
    while n < 2000 {
        let got = deep.receive(10, Duration::ZERO, None).await?;
        n += got.len();
        let receipts: Vec<_> = got.into_iter().map(|m| m.receipt).collect();
        deep.delete_batch(&receipts).await?;
    }
    println!("receive+delete, 55k backlog: {}", rate(n, t.elapsed()));

    // Idle long polls: CPU used by 10 pollers waiting on an empty queue for 5 s.
    let empty = local.queue("q").await?;
    let cpu = cpu_seconds();
    let t = Instant::now();
    let pollers: Vec<_> = (0..10)
        .map(|_| {
            let q = empty.clone();
            tokio::spawn(async move {
                q.receive(10, Duration::from_secs(5), None)
                    .await
                    .map(|v| v.len())
            })
        })
        .collect();
    for p in pollers {
        p.await??;
    }
    println!(
        "10 idle 5 s long polls:     {:.2} s CPU over {:.1} s",
        cpu_seconds() - cpu,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

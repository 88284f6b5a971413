//! parse_adt (guard + parse + map) on corpus ADT messages; the budget is 10 µs for ~4.5 KB.
//! hl7-parser's whole-message parse is measured alongside as the reference point.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet_hl7::{MapConfig, parse_adt};
use std::hint::black_box;

fn corpus_file(name: &str) -> Vec<u8> {
    let path = fleet_core::env::corpus_dir()
        .join("hl7/fhir-converter")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("corpus file {}: {e} (set FLEET_CORPUS_DIR)", path.display()))
}

fn bench(c: &mut Criterion) {
    let cfg = MapConfig::default();
    let mut g = c.benchmark_group("parse_adt");
    // ADT-A15-01 (4.6 KB) is the corpus ADT closest to 4.5 KB; ADT-A04-01 (8.6 KB) the largest.
    for name in ["ADT-A15-01.hl7", "ADT-A04-01.hl7"] {
        let msg = corpus_file(name);
        assert!(parse_adt(&msg, &cfg).is_ok(), "{name} must map");
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(format!("{name} ({} B)", msg.len()), |b| {
            b.iter(|| parse_adt(black_box(&msg), &cfg))
        });
    }
    let msg = corpus_file("ADT-A15-01.hl7");
    let text = String::from_utf8(msg).expect("corpus file is UTF-8");
    g.bench_function("hl7-parser whole message, ADT-A15-01 (reference)", |b| {
        b.iter(|| {
            hl7_parser::Message::parse_with_lenient_newlines(black_box(&text), true)
                .map(|m| m.segments.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

use std::time::Instant;
fn main() {
    let s = std::fs::read_to_string("/work/shared/corpus/hl7/fhir-converter/ADT-A01-01.hl7").unwrap();
    let seps = hl7_parser::message::Separators::default();
    let segs: Vec<&str> = s.lines().filter(|l| ["PID","PV1","EVN","MSH"].iter().any(|p| l.starts_with(p))).collect();
    let tot: usize = segs.iter().map(|l| l.len()).sum();
    let n = 20000;
    let t = Instant::now();
    let mut c = 0;
    for _ in 0..n { for l in &segs { let r = hl7_parser::parser::parse_segment_with_separators(l, seps).unwrap(); c += r.fields.len(); } }
    println!("segs {} bytes {} : {:?}/iter {}", segs.len(), tot, t.elapsed()/n, c);
    let t = Instant::now();
    for _ in 0..2000 { let m = hl7_parser::Message::parse_with_lenient_newlines(&s, true).unwrap(); c+= m.segments.len(); }
    println!("whole {} bytes: {:?}", s.len(), t.elapsed()/2000);
}

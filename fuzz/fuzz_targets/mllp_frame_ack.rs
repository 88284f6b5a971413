//! The MLLP gateway's frame decoder and ACK builder (issue 17): bytes from a socket, read in
//! arbitrary pieces, through `FrameDecoder`; every message it yields through `parse_header`
//! and `build_ack` with each kind of verdict. Nothing may panic; the decoder's buffer stays
//! bounded and it accounts for every byte; every ACK is a valid HL7 message: it parses back with
//! `parse_header` (MSH-9.1 = ACK) and `parse_ack` (MSA-1 the code the verdict and the inbound
//! MSH-15 call for, MSA-2 the inbound control id as echoed), and carries no MLLP block
//! character or LF, so it can be framed. The expected code and the send/no-send decision are
//! computed here from HL7's rules, not by the crate's own helpers.
//!
//! Input: byte 0 picks the frame size limit, bytes 1..5 the read sizes (cycled), byte 5 the
//! 0357 condition of the error verdicts; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mllp_gateway::ack::{
    AckContext, ErrorCondition, InboundHeader, Verdict, build_ack, parse_ack, parse_header,
    parse_header_lenient,
};
use mllp_gateway::frame::{FrameDecoder, FrameEvent, TOO_LARGE_PREFIX};

const CONDITIONS: [ErrorCondition; 9] = [
    ErrorCondition::SegmentSequence,
    ErrorCondition::RequiredFieldMissing,
    ErrorCondition::DataType,
    ErrorCondition::TableValueNotFound,
    ErrorCondition::UnsupportedMessageType,
    ErrorCondition::UnsupportedEventCode,
    ErrorCondition::UnsupportedProcessingId,
    ErrorCondition::UnsupportedVersionId,
    ErrorCondition::ApplicationInternalError,
];

const CTX: AckContext<'static> = AckContext {
    control_id: "GWFUZZ000000000001",
    timestamp: "20240102030405+0000",
};

/// MSA-1 per HL7 v2.5.1 2.9.2 / 2.9.3, or None when MSH-15 says not to answer.
fn expected_code(header: Option<&InboundHeader>, verdict: &Verdict) -> Option<&'static str> {
    let accepted = matches!(verdict, Verdict::Accepted);
    let (msh15, msh16) = header.map_or((Vec::new(), Vec::new()), |h| {
        (
            h.field(15).trim_ascii().to_ascii_uppercase(),
            h.field(16).trim_ascii().to_vec(),
        )
    });
    if msh15.is_empty() && msh16.is_empty() {
        return Some(match verdict {
            Verdict::Accepted => "AA",
            Verdict::ContentError { .. } => "AE",
            Verdict::Rejected { .. } => "AR",
        });
    }
    let send = match msh15.as_slice() {
        b"NE" => false,
        b"ER" => !accepted,
        b"SU" => accepted,
        _ => true,
    };
    send.then_some(match verdict {
        Verdict::Accepted => "CA",
        Verdict::ContentError { .. } => "CE",
        Verdict::Rejected { .. } => "CR",
    })
}

fn check_message(message: &[u8], condition: ErrorCondition) {
    let strict = parse_header(message);
    let header = parse_header_lenient(message).ok();
    // The strict read accepts only what the lenient one does.
    assert!(strict.is_err() || header.is_some());
    // The error text is the gateway's own, but make it hostile: every delimiter, CR, LF, the
    // block characters and non-ASCII.
    let text = format!(
        "bad|^~\\&#*%$@ {}\r\n\u{b}\u{1c}é",
        String::from_utf8_lossy(&message[..message.len().min(40)])
    );
    for verdict in [
        Verdict::Accepted,
        Verdict::ContentError {
            condition,
            text: text.clone(),
        },
        Verdict::Rejected {
            condition,
            text: text.clone(),
        },
    ] {
        let ack = build_ack(header.as_ref(), &verdict, &CTX);
        let want = expected_code(header.as_ref(), &verdict);
        assert_eq!(ack.is_some(), want.is_some(), "{verdict:?}");
        let Some(ack) = ack else { continue };
        assert!(
            !ack.iter().any(|b| matches!(b, 0x0B | 0x1C | b'\n')),
            "ACK holds a block character or LF"
        );
        assert!(ack.ends_with(b"\r"));
        let back = parse_header(&ack).expect("the ACK's MSH parses");
        assert_eq!(back.message_type(), "ACK");
        let parsed = parse_ack(&ack).expect("the ACK has an MSA");
        assert_eq!(Some(parsed.code.as_str()), want);
        let echoed = header
            .as_ref()
            .map(InboundHeader::echoed_control_id)
            .unwrap_or_default();
        assert!(echoed.len() <= mllp_gateway::ack::COPIED_FIELD_BOUND);
        assert_eq!(parsed.control_id, String::from_utf8_lossy(&echoed));
        if !matches!(verdict, Verdict::Accepted) {
            assert_eq!(parsed.error_code.as_deref(), Some(condition.code()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let max = match data[0] % 4 {
        0 => usize::from(data[0] / 4),
        1 => 256,
        2 => TOO_LARGE_PREFIX,
        _ => 1 << 20,
    };
    let reads: Vec<usize> = data[1..5].iter().map(|b| usize::from(*b) + 1).collect();
    let condition = CONDITIONS[usize::from(data[5]) % CONDITIONS.len()];
    let stream = &data[6..];

    let mut decoder = FrameDecoder::new(max);
    let mut accounted = 0usize;
    let mut pos = 0;
    let mut turn = 0;
    while pos < stream.len() {
        let n = reads[turn % reads.len()].min(stream.len() - pos);
        turn += 1;
        decoder.push(&stream[pos..pos + n]);
        pos += n;
        assert!(decoder.buffered() <= max + n);
        while let Some(event) = decoder.next_event() {
            match event {
                FrameEvent::Frame(message) => {
                    assert!(message.len() <= max);
                    accounted += message.len() + 3;
                    check_message(&message, condition);
                }
                FrameEvent::TooLarge { prefix, total } => {
                    assert!(total > max);
                    assert!(prefix.len() <= TOO_LARGE_PREFIX.min(max));
                    accounted += total + 3;
                    check_message(&prefix, condition);
                }
                FrameEvent::Discarded(n) => {
                    assert!(n > 0);
                    accounted += n;
                }
            }
        }
        assert!(decoder.buffered() <= max);
    }
    if let Some(FrameEvent::Discarded(n)) = decoder.finish() {
        accounted += n;
    }
    assert_eq!(accounted, stream.len(), "every byte is accounted for once");
    assert_eq!(decoder.buffered(), 0);
    // The whole input as one message too (no framing in the way).
    check_message(data, condition);
});

//! Splitting a file or queue body into messages. Works on bytes (the charset is per message,
//! declared in each MSH-18) and treats CR, LF, CRLF and the MLLP frame bytes alike as segment
//! boundaries, so framed streams, text files and batch files all reduce to the same lines.

use crate::error::Hl7Error;
use fleet_core::ErrorCode;

/// Segment ids of the batch envelope (file header/trailer, batch header/trailer).
pub fn is_envelope(line: &[u8]) -> bool {
    matches!(line.get(..3), Some(b"FHS" | b"BHS" | b"BTS" | b"FTS"))
        && line.get(3).is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn is_msh(line: &[u8]) -> bool {
    line.starts_with(b"MSH") && line.get(3).is_some_and(|c| !c.is_ascii_alphanumeric())
}

fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input
        .split(|&c| matches!(c, b'\r' | b'\n' | 0x0B | 0x1C))
        .map(|l| l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l))
        .filter(|l| !l.iter().all(|c| c.is_ascii_whitespace()))
}

/// The count a BTS/FTS trailer declares in its first field, when it declares one.
fn trailer_count(line: &[u8]) -> Option<usize> {
    let sep = *line.get(3)?;
    let f1 = line.split(|&c| c == sep).nth(1)?;
    std::str::from_utf8(f1).ok()?.trim().parse().ok()
}

/// Splits raw input (a file or a queue body) into individual messages: strips UTF-8 BOMs and
/// MLLP framing (0x0B ... 0x1C 0x0D), accepts CR, LF and CRLF segment ends, unwraps FHS/BHS/BTS/FTS
/// batch envelopes (several messages per batch) and skips blank lines between messages.
/// Returns each message normalised (segments joined by CR, no trailing CR), or an error per
/// chunk that cannot be a message: lines outside any MSH (`HL7_NO_MSH`), a malformed envelope
/// or a BTS-1 count that disagrees with the batch (`HL7_BAD_BATCH`, placed after the batch's
/// messages), or no content at all (a single `HL7_EMPTY`). Messages are not validated here;
/// `parse_adt` does that.
pub fn split_messages(input: &[u8]) -> Vec<Result<Vec<u8>, Hl7Error>> {
    let mut out: Vec<Result<Vec<u8>, Hl7Error>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut stray = 0usize;
    let mut in_batch = false;
    let mut batch_count = 0usize;
    let mut saw_any = false;

    let flush_stray = |stray: &mut usize, out: &mut Vec<Result<Vec<u8>, Hl7Error>>| {
        if *stray > 0 {
            out.push(Err(Hl7Error::new(
                ErrorCode::Hl7NoMsh,
                format!("{stray} line(s) outside any MSH-started message"),
            )));
            *stray = 0;
        }
    };

    for line in lines(input) {
        saw_any = true;
        if is_msh(line) {
            flush_stray(&mut stray, &mut out);
            if let Some(m) = current.take() {
                out.push(Ok(m));
            }
            current = Some(line.to_vec());
            if in_batch {
                batch_count += 1;
            }
        } else if is_envelope(line) {
            if let Some(m) = current.take() {
                out.push(Ok(m));
            }
            flush_stray(&mut stray, &mut out);
            match &line[..3] {
                b"BHS" => {
                    if in_batch {
                        out.push(Err(Hl7Error::new(
                            ErrorCode::Hl7BadBatch,
                            "BHS inside an open batch (missing BTS)",
                        )));
                    }
                    in_batch = true;
                    batch_count = 0;
                }
                b"BTS" => {
                    if !in_batch {
                        out.push(Err(Hl7Error::new(
                            ErrorCode::Hl7BadBatch,
                            "BTS without BHS",
                        )));
                    } else if let Some(declared) = trailer_count(line)
                        && declared != batch_count
                    {
                        out.push(Err(Hl7Error::new(
                            ErrorCode::Hl7BadBatch,
                            format!(
                                "BTS-1 declares {declared} messages, batch holds {batch_count}"
                            ),
                        )));
                    }
                    in_batch = false;
                }
                // FHS/FTS only wrap batches; nothing to count at message level.
                _ => {}
            }
        } else if let Some(m) = current.as_mut() {
            m.push(b'\r');
            m.extend_from_slice(line);
        } else {
            stray += 1;
        }
    }
    flush_stray(&mut stray, &mut out);
    if let Some(m) = current.take() {
        out.push(Ok(m));
    }
    if in_batch {
        out.push(Err(Hl7Error::new(
            ErrorCode::Hl7BadBatch,
            "batch has no BTS trailer",
        )));
    }
    if !saw_any {
        out.push(Err(Hl7Error::new(
            ErrorCode::Hl7Empty,
            "no content after removing framing and whitespace",
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_texts(input: &[u8]) -> Vec<Result<String, ErrorCode>> {
        split_messages(input)
            .into_iter()
            .map(|r| {
                r.map(|m| String::from_utf8_lossy(&m).into_owned())
                    .map_err(|e| e.code)
            })
            .collect()
    }

    #[test]
    fn splits_line_endings_framing_and_blank_lines() {
        let input = b"\xEF\xBB\xBFMSH|^~\\&|A\r\nPID|1\n\nPV1|1\rMSH|^~\\&|B\rPID|2\r\n";
        assert_eq!(
            ok_texts(input),
            vec![
                Ok("MSH|^~\\&|A\rPID|1\rPV1|1".into()),
                Ok("MSH|^~\\&|B\rPID|2".into())
            ]
        );
        let mllp = b"\x0bMSH|^~\\&|A\rPID|1\r\x1c\r\x0bMSH|^~\\&|B\rPID|2\r\x1c\r";
        assert_eq!(
            ok_texts(mllp),
            vec![
                Ok("MSH|^~\\&|A\rPID|1".into()),
                Ok("MSH|^~\\&|B\rPID|2".into())
            ]
        );
    }

    #[test]
    fn batch_envelopes() {
        let batch =
            b"FHS|^~\\&|F\rBHS|^~\\&|B\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\rPID|2\rBTS|2\rFTS|1\r";
        assert_eq!(
            ok_texts(batch),
            vec![
                Ok("MSH|^~\\&|1\rPID|1".into()),
                Ok("MSH|^~\\&|2\rPID|2".into())
            ]
        );
        let wrong_count = b"BHS|^~\\&|B\rMSH|^~\\&|1\rBTS|3\r";
        assert_eq!(
            ok_texts(wrong_count),
            vec![Ok("MSH|^~\\&|1".into()), Err(ErrorCode::Hl7BadBatch)]
        );
        assert_eq!(
            ok_texts(b"BHS|^~\\&\rMSH|^~\\&|1\r"),
            vec![Ok("MSH|^~\\&|1".into()), Err(ErrorCode::Hl7BadBatch)]
        );
        assert_eq!(
            ok_texts(b"MSH|^~\\&|1\rBTS|1"),
            vec![Ok("MSH|^~\\&|1".into()), Err(ErrorCode::Hl7BadBatch)]
        );
    }

    #[test]
    fn stray_lines_and_empty_input() {
        assert_eq!(
            ok_texts(b"junk\rmore junk\rMSH|^~\\&|1\r"),
            vec![Err(ErrorCode::Hl7NoMsh), Ok("MSH|^~\\&|1".into())]
        );
        assert_eq!(ok_texts(b""), vec![Err(ErrorCode::Hl7Empty)]);
        assert_eq!(ok_texts(b"\x0b\r\n \x1c"), vec![Err(ErrorCode::Hl7Empty)]);
        // MSH inside a field is not a segment start.
        assert_eq!(
            ok_texts(b"MSH|^~\\&|1\rPID|1||S|MSH|1\r"),
            vec![Ok("MSH|^~\\&|1\rPID|1||S|MSH|1".into())]
        );
    }
}

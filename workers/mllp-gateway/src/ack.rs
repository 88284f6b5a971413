//! Reading the inbound MSH and building the ACK.
//!
//! The MSH is read from raw bytes (the message may be ISO 8859-1, not UTF-8) and tolerantly: only
//! the delimiters (MSH-1, MSH-2), MSH-9.1 and MSH-10 must be usable. The ACK follows HL7 v2.5.1
//! chapter 2 (2.9.2 original mode, 2.9.3 enhanced mode, the MSH, MSA and ERR segment
//! definitions); the mapping from the gateway's decisions to ACK codes, and what is sent when
//! the MSH is unusable, are in DESIGN.md, "Acknowledgements".

use std::ops::Range;

/// The version the ACK carries when the inbound message has none (or no usable MSH).
pub const DEFAULT_VERSION: &str = "2.5.1";
/// Bytes of an inbound field copied into the ACK at most (MSH-3..6, MSH-10 as MSA-2, MSH-11,
/// MSH-12, MSH-18), cut where no escape sequence is split.
pub const COPIED_FIELD_BOUND: usize = 227;
/// Bytes of the gateway's error text in the ACK at most (after escaping).
const TEXT_BOUND: usize = 200;
/// MSH fields kept after MSH-2 (MSH-3 to MSH-21).
const KEPT_FIELDS: usize = 19;
/// The longest message type or trigger event code taken from MSH-9.
const CODE_BOUND: usize = 20;
const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// The delimiters of a message: MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: u8,
    pub subcomponent: u8,
    /// The truncation character (v2.7+), when MSH-2 has five characters.
    pub truncation: Option<u8>,
}

impl Delimiters {
    /// `|^~\&`, used when the inbound delimiters are not usable.
    pub const STANDARD: Self = Self {
        field: b'|',
        component: b'^',
        repetition: b'~',
        escape: b'\\',
        subcomponent: b'&',
        truncation: None,
    };

    /// MSH-2 as written.
    fn encoding_characters(&self) -> Vec<u8> {
        let mut out = vec![
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ];
        out.extend(self.truncation);
        out
    }

    /// The escape sequence letter for a delimiter byte (HL7 v2.5.1 section 2.7), if it is one.
    fn escape_letter(&self, b: u8) -> Option<u8> {
        if b == self.field {
            Some(b'F')
        } else if b == self.component {
            Some(b'S')
        } else if b == self.subcomponent {
            Some(b'T')
        } else if b == self.repetition {
            Some(b'R')
        } else if b == self.escape {
            Some(b'E')
        } else if Some(b) == self.truncation {
            Some(b'P')
        } else {
            None
        }
    }

    /// The delimiter an escape sequence letter stands for.
    fn unescape_letter(&self, letter: u8) -> Option<u8> {
        match letter {
            b'F' => Some(self.field),
            b'S' => Some(self.component),
            b'T' => Some(self.subcomponent),
            b'R' => Some(self.repetition),
            b'E' => Some(self.escape),
            b'P' => self.truncation,
            _ => None,
        }
    }
}

/// Whether a byte may be a delimiter here: printable ASCII that is not a letter or digit. HL7
/// only forbids alphanumerics; control characters (which include the MLLP block characters,
/// CR and LF) and non-ASCII bytes are refused too, so an ACK written with these delimiters is
/// always printable ASCII outside its copied fields and can be framed.
fn usable_delimiter(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) && !b.is_ascii_alphanumeric()
}

/// The inbound MSH as read: its delimiters and its raw fields (MSH-3 to MSH-21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundHeader {
    delimiters: Delimiters,
    /// The MSH segment, up to the end of the last kept field.
    segment: Vec<u8>,
    /// `fields[i]` is MSH-(i + 3) in `segment`.
    fields: Vec<Range<usize>>,
}

/// Why a message has no usable MSH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty message")]
    Empty,
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    #[error("MSH-1/MSH-2 delimiters are not valid")]
    BadEncodingChars,
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("{0} is not a valid code")]
    InvalidField(&'static str),
}

impl HeaderError {
    /// The HL7 table 0357 code for it.
    pub fn error_code(&self) -> ErrorCondition {
        match self {
            Self::Empty | Self::NoMsh => ErrorCondition::SegmentSequence,
            Self::BadEncodingChars | Self::InvalidField(_) => ErrorCondition::DataType,
            Self::MissingField(_) => ErrorCondition::RequiredFieldMissing,
        }
    }
}

/// HL7 table 0357 (message error condition codes) — the ones used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCondition {
    /// 100
    SegmentSequence,
    /// 101
    RequiredFieldMissing,
    /// 102
    DataType,
    /// 103
    TableValueNotFound,
    /// 200
    UnsupportedMessageType,
    /// 201
    UnsupportedEventCode,
    /// 202
    UnsupportedProcessingId,
    /// 203
    UnsupportedVersionId,
    /// 207
    ApplicationInternalError,
}

impl ErrorCondition {
    /// The code, e.g. "207".
    pub fn code(self) -> &'static str {
        match self {
            Self::SegmentSequence => "100",
            Self::RequiredFieldMissing => "101",
            Self::DataType => "102",
            Self::TableValueNotFound => "103",
            Self::UnsupportedMessageType => "200",
            Self::UnsupportedEventCode => "201",
            Self::UnsupportedProcessingId => "202",
            Self::UnsupportedVersionId => "203",
            Self::ApplicationInternalError => "207",
        }
    }

    /// HL7's text for the code (table 0357 as of v2.5.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::SegmentSequence => "Segment sequence error",
            Self::RequiredFieldMissing => "Required field missing",
            Self::DataType => "Data type error",
            Self::TableValueNotFound => "Table value not found",
            Self::UnsupportedMessageType => "Unsupported message type",
            Self::UnsupportedEventCode => "Unsupported event code",
            Self::UnsupportedProcessingId => "Unsupported processing id",
            Self::UnsupportedVersionId => "Unsupported version id",
            Self::ApplicationInternalError => "Application internal error",
        }
    }
}

/// MSH-15, accept acknowledgment type (HL7 table 0155).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptAck {
    /// AL
    Always,
    /// NE
    Never,
    /// ER: error/reject conditions only.
    Error,
    /// SU: successful completion only.
    Success,
}

/// What the gateway decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Queued: AA / CA.
    Accepted,
    /// The content is wrong (no usable MSH, bad encoding characters, too large, bad charset):
    /// AE / CE. Resending the same bytes will not help.
    ContentError {
        condition: ErrorCondition,
        text: String,
    },
    /// Refused: unsupported type/trigger/version/processing id, a facility the client may not
    /// send as, or queueing failed (unavailable, throttled, deadline) so the sender should
    /// retry: AR / CR.
    Rejected {
        condition: ErrorCondition,
        text: String,
    },
}

impl Verdict {
    /// MSA-1 for this verdict: AA/AE/AR in original mode, CA/CE/CR in enhanced mode.
    pub fn ack_code(&self, enhanced: bool) -> &'static str {
        match (self, enhanced) {
            (Self::Accepted, false) => "AA",
            (Self::ContentError { .. }, false) => "AE",
            (Self::Rejected { .. }, false) => "AR",
            (Self::Accepted, true) => "CA",
            (Self::ContentError { .. }, true) => "CE",
            (Self::Rejected { .. }, true) => "CR",
        }
    }

    fn error(&self) -> Option<(ErrorCondition, &str)> {
        match self {
            Self::Accepted => None,
            Self::ContentError { condition, text } | Self::Rejected { condition, text } => {
                Some((*condition, text))
            }
        }
    }
}

/// What the gateway supplies for its ACK.
#[derive(Debug, Clone, Copy)]
pub struct AckContext<'a> {
    /// The ACK's own MSH-10 (the gateway makes it; must not be empty).
    pub control_id: &'a str,
    /// MSH-7, YYYYMMDDHHMMSS+ZZZZ, given by the caller.
    pub timestamp: &'a str,
}

/// The parts of a received ACK (for the `send` client and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAck {
    /// MSA-1.
    pub code: String,
    /// MSA-2, as written (not unescaped).
    pub control_id: String,
    /// ERR-3.1 (v2.5+), or the code in ERR-1.4 (older).
    pub error_code: Option<String>,
    /// ERR-8, or MSA-3, or the code's text in ERR-3.2 / ERR-1.4.2; unescaped.
    pub error_text: Option<String>,
}

/// Reads the MSH and checks the fields the gateway needs (MSH-9.1 and MSH-10).
pub fn parse_header(message: &[u8]) -> Result<InboundHeader, HeaderError> {
    let header = parse_header_lenient(message)?;
    let message_type = header.component(9, 0);
    if trim(message_type).is_empty() {
        return Err(HeaderError::MissingField("MSH-9"));
    }
    if code(message_type).is_empty() {
        return Err(HeaderError::InvalidField("MSH-9"));
    }
    if trim(header.field(10)).is_empty() {
        return Err(HeaderError::MissingField("MSH-10"));
    }
    Ok(header)
}

/// Reads the MSH without requiring any field: fails only when there is no MSH or its delimiters
/// are unusable. For answering a message whose MSH-9 or MSH-10 is missing in kind (same
/// delimiters, sender and receiver swapped, MSH-15 honoured).
pub fn parse_header_lenient(message: &[u8]) -> Result<InboundHeader, HeaderError> {
    let message = message.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(message);
    let start = message
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n' | b'\t' | b' '))
        .ok_or(HeaderError::Empty)?;
    let message = &message[start..];
    if !message.starts_with(b"MSH") {
        return Err(HeaderError::NoMsh);
    }
    let end = memchr::memchr2(CR, LF, message).unwrap_or(message.len());
    let segment = &message[..end];
    let field = *segment.get(3).ok_or(HeaderError::BadEncodingChars)?;
    if !usable_delimiter(field) {
        return Err(HeaderError::BadEncodingChars);
    }
    let after = &segment[4..];
    let msh2_len = memchr::memchr(field, after).unwrap_or(after.len());
    let msh2 = &after[..msh2_len];
    if !(4..=5).contains(&msh2.len())
        || !msh2.iter().all(|&b| usable_delimiter(b) && b != field)
        || (1..msh2.len()).any(|i| msh2[..i].contains(&msh2[i]))
    {
        return Err(HeaderError::BadEncodingChars);
    }
    let delimiters = Delimiters {
        field,
        component: msh2[0],
        repetition: msh2[1],
        escape: msh2[2],
        subcomponent: msh2[3],
        truncation: msh2.get(4).copied(),
    };
    let mut fields = Vec::new();
    let mut pos = 4 + msh2_len;
    while pos < segment.len() && fields.len() < KEPT_FIELDS {
        // `segment[pos]` is a field separator.
        let from = pos + 1;
        let to = memchr::memchr(field, &segment[from..]).map_or(segment.len(), |i| from + i);
        fields.push(from..to);
        pos = to;
    }
    Ok(InboundHeader {
        delimiters,
        segment: segment[..pos].to_vec(),
        fields,
    })
}

impl InboundHeader {
    /// MSH-1 and MSH-2.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// MSH-n raw (n ≥ 3; empty when absent).
    pub fn field(&self, n: usize) -> &[u8] {
        n.checked_sub(3)
            .and_then(|i| self.fields.get(i))
            .map_or(&[][..], |r| &self.segment[r.clone()])
    }

    /// Component `index` (0-based) of MSH-n's first repetition, cut at the subcomponent
    /// separator.
    fn component(&self, n: usize, index: usize) -> &[u8] {
        component(self.field(n), &self.delimiters, index)
    }

    /// MSH-3 raw.
    pub fn sending_application(&self) -> &[u8] {
        self.field(3)
    }

    /// MSH-4 raw.
    pub fn sending_facility(&self) -> &[u8] {
        self.field(4)
    }

    /// MSH-4.1 as text for routing and mapping: printable ASCII kept, every other byte '?'
    /// (not unescaped).
    pub fn sending_facility_id(&self) -> String {
        ascii_text(trim(self.component(4, 0)))
    }

    /// MSH-9.1 (e.g. "ADT"), uppercase ASCII, or empty when it is not a code (1 to 20 ASCII
    /// letters and digits).
    pub fn message_type(&self) -> String {
        code(self.component(9, 0))
    }

    /// MSH-9.2 (e.g. "A01"), uppercase ASCII, or empty when absent or not a code.
    pub fn trigger_event(&self) -> String {
        code(self.component(9, 1))
    }

    /// MSH-10 raw.
    pub fn control_id(&self) -> &[u8] {
        self.field(10)
    }

    /// MSH-10 as the ACK's MSA-2 carries it: control bytes removed, bounded to
    /// [`COPIED_FIELD_BOUND`] bytes without splitting an escape sequence.
    pub fn echoed_control_id(&self) -> Vec<u8> {
        bounded(self.field(10), &self.delimiters)
    }

    /// MSH-11.1 (printable ASCII, other bytes '?').
    pub fn processing_id(&self) -> String {
        ascii_text(trim(self.component(11, 0)))
    }

    /// MSH-12.1 (printable ASCII, other bytes '?').
    pub fn version(&self) -> String {
        ascii_text(trim(self.component(12, 0)))
    }

    /// MSH-15 (the whole field): AL, NE, ER, SU; None when empty (original mode unless MSH-16 is set). A value
    /// outside table 0155 reads as AL: the sender asked for enhanced mode, and answering is the
    /// safe side.
    pub fn accept_ack_type(&self) -> Option<AcceptAck> {
        let value = trim(self.field(15));
        if value.is_empty() {
            return None;
        }
        Some(match value.to_ascii_uppercase().as_slice() {
            b"NE" => AcceptAck::Never,
            b"ER" => AcceptAck::Error,
            b"SU" => AcceptAck::Success,
            _ => AcceptAck::Always,
        })
    }

    /// MSH-15 or MSH-16 non-empty: enhanced acknowledgment mode (HL7 v2.5.1 section 2.9.3).
    pub fn enhanced_mode(&self) -> bool {
        !trim(self.field(15)).is_empty() || !trim(self.field(16)).is_empty()
    }

    /// MSH-18 raw (first repetition).
    pub fn charset(&self) -> &[u8] {
        let f = self.field(18);
        &f[..memchr::memchr(self.delimiters.repetition, f).unwrap_or(f.len())]
    }

    /// PID-3 first repetition, component 1 (printable ASCII, other bytes '?'), of the first PID
    /// segment of `message`, read with the delimiters of its MSH (`|^~\&` when it has none), for
    /// FIFO grouping. Never log it.
    pub fn patient_id(message: &[u8]) -> Option<String> {
        let d = &parse_header_lenient(message).map_or(Delimiters::STANDARD, |h| h.delimiters);
        let pid = message
            .split(|b| *b == CR || *b == LF)
            .find(|s| s.len() > 3 && s.starts_with(b"PID") && s[3] == d.field)?;
        let pid3 = pid.split(|b| *b == d.field).nth(3)?;
        let id = trim(component(pid3, d, 0));
        (!id.is_empty()).then(|| ascii_text(id))
    }
}

/// Component `index` (0-based) of a field's first repetition, cut at the subcomponent separator.
fn component<'f>(field: &'f [u8], d: &Delimiters, index: usize) -> &'f [u8] {
    let first = field.split(|b| *b == d.repetition).next().unwrap_or(&[]);
    let comp = first.split(|b| *b == d.component).nth(index).unwrap_or(&[]);
    comp.split(|b| *b == d.subcomponent).next().unwrap_or(&[])
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// A code (message type, trigger): 1 to CODE_BOUND ASCII letters/digits, uppercased; else "".
fn code(raw: &[u8]) -> String {
    let raw = trim(raw);
    if raw.is_empty() || raw.len() > CODE_BOUND || !raw.iter().all(u8::is_ascii_alphanumeric) {
        return String::new();
    }
    raw.iter()
        .map(|b| char::from(b.to_ascii_uppercase()))
        .collect()
}

/// Printable ASCII kept, every other byte '?'.
fn ascii_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..=0x7E).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// An inbound field as copied into the ACK: control bytes (CR, LF, the MLLP block characters)
/// removed, at most COPIED_FIELD_BOUND bytes, cut where no escape sequence is open and not
/// inside a UTF-8 character.
fn bounded(raw: &[u8], d: &Delimiters) -> Vec<u8> {
    let clean: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| *b >= 0x20 && *b != 0x7F)
        .collect();
    if clean.len() <= COPIED_FIELD_BOUND {
        return clean;
    }
    // The last cut point within the bound where no escape sequence is open.
    let mut open = false;
    let mut cut = 0;
    for (i, &b) in clean[..COPIED_FIELD_BOUND].iter().enumerate() {
        if !open {
            cut = i;
        }
        if b == d.escape {
            open = !open;
        }
    }
    if !open {
        cut = COPIED_FIELD_BOUND;
    }
    // Not in the middle of a UTF-8 character (escape characters are ASCII, so this keeps the cut
    // outside escape sequences).
    let mut back = 0;
    while cut > 0 && back < 3 && (0x80..0xC0).contains(&clean[cut]) {
        cut -= 1;
        back += 1;
    }
    clean[..cut].to_vec()
}

/// The gateway's own text for a field of the ACK: delimiters escaped (\F\ \S\ \T\ \R\ \E\ \P\),
/// CR, LF and other controls as spaces, non-ASCII as '?', at most `bound` bytes.
fn escaped_text(text: &str, d: &Delimiters, bound: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len().min(bound));
    for c in text.chars() {
        let b = if c.is_ascii_graphic() || c == ' ' {
            c as u8
        } else if c.is_control() {
            b' '
        } else {
            b'?'
        };
        let (bytes, len) = match d.escape_letter(b) {
            Some(letter) => ([d.escape, letter, d.escape], 3),
            None => ([b, 0, 0], 1),
        };
        let piece = &bytes[..len];
        if out.len() + len > bound {
            break;
        }
        out.extend_from_slice(piece);
    }
    out
}

/// Whether a version (MSH-12.1) is before 2.5: the ERR segment then uses ERR-1.
fn before_v25(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.trim().parse::<u32>().ok());
    matches!(
        (parts.next(), parts.next()),
        (Some(Some(2)), Some(Some(minor))) if minor < 5
    )
}

/// The ACK to send, or None when MSH-15 says not to (NE always; ER on success; SU on error).
/// `header` None = no usable MSH: the ACK is in original mode, with `|^~\&`, empty MSH-3 to
/// MSH-6, MSH-9 `ACK`, MSH-11 `P`, MSH-12 `2.5.1` and an empty MSA-2 (DESIGN.md,
/// "Acknowledgements").
pub fn build_ack(
    header: Option<&InboundHeader>,
    verdict: &Verdict,
    ctx: &AckContext,
) -> Option<Vec<u8>> {
    let enhanced = header.is_some_and(InboundHeader::enhanced_mode);
    if enhanced {
        let accepted = matches!(verdict, Verdict::Accepted);
        let send = match header.and_then(InboundHeader::accept_ack_type) {
            Some(AcceptAck::Never) => false,
            Some(AcceptAck::Error) => !accepted,
            Some(AcceptAck::Success) => accepted,
            Some(AcceptAck::Always) | None => true,
        };
        if !send {
            return None;
        }
    }
    let d = header.map_or(Delimiters::STANDARD, InboundHeader::delimiters);
    let copied = |n: usize| header.map_or_else(Vec::new, |h| bounded(h.field(n), &d));
    let or_default = |value: Vec<u8>, default: &str| {
        if value.is_empty() {
            default.as_bytes().to_vec()
        } else {
            value
        }
    };

    let mut msh9 = b"ACK".to_vec();
    if let Some(trigger) = header.map(InboundHeader::trigger_event)
        && !trigger.is_empty()
    {
        msh9.push(d.component);
        msh9.extend_from_slice(trigger.as_bytes());
        msh9.push(d.component);
        msh9.extend_from_slice(b"ACK");
    }
    let version = or_default(copied(12), DEFAULT_VERSION);
    let version_id = ascii_text(trim(component(&version, &d, 0)));
    let mut msh = vec![
        copied(5),
        copied(6),
        copied(3),
        copied(4),
        escaped_text(ctx.timestamp, &d, COPIED_FIELD_BOUND),
        Vec::new(),
        msh9,
        escaped_text(ctx.control_id, &d, COPIED_FIELD_BOUND),
        or_default(copied(11), "P"),
        version,
    ];
    let charset = copied(18);
    if !charset.is_empty() {
        msh.extend([Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()]);
        msh.push(charset);
    }

    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"MSH");
    out.push(d.field);
    out.extend(d.encoding_characters());
    for f in &msh {
        out.push(d.field);
        out.extend_from_slice(f);
    }
    out.push(CR);

    let old_err = before_v25(&version_id);
    let error = verdict.error();
    out.extend_from_slice(b"MSA");
    out.push(d.field);
    out.extend_from_slice(verdict.ack_code(enhanced).as_bytes());
    out.push(d.field);
    out.extend(header.map_or_else(Vec::new, InboundHeader::echoed_control_id));
    if let (true, Some((_, text))) = (old_err, error) {
        // MSA-3, text message: where versions before 2.5 carry the explanation.
        out.push(d.field);
        out.extend(escaped_text(text, &d, TEXT_BOUND));
    }
    out.push(CR);

    if let Some((condition, text)) = error {
        let name = escaped_text(condition.name(), &d, TEXT_BOUND);
        out.extend_from_slice(b"ERR");
        out.push(d.field);
        if old_err {
            // ERR-1, error code and location: <segment>^<sequence>^<field>^<CE code>, the CE's
            // parts as subcomponents.
            out.extend([d.component, d.component, d.component]);
            out.extend_from_slice(condition.code().as_bytes());
            out.push(d.subcomponent);
            out.extend(name);
            out.push(d.subcomponent);
            out.extend_from_slice(b"HL70357");
        } else {
            // ERR-3 HL7 error code (CWE), ERR-4 severity (E), ERR-8 user message.
            out.extend([d.field, d.field]);
            out.extend_from_slice(condition.code().as_bytes());
            out.push(d.component);
            out.extend(name);
            out.push(d.component);
            out.extend_from_slice(b"HL70357");
            out.push(d.field);
            out.push(b'E');
            out.extend([d.field, d.field, d.field, d.field]);
            out.extend(escaped_text(text, &d, TEXT_BOUND));
        }
        out.push(CR);
    }
    Some(out)
}

/// Unescapes the delimiter escape sequences of a field (others are kept as written), as text.
fn unescaped(raw: &[u8], d: &Delimiters) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == d.escape
            && i + 2 < raw.len()
            && raw[i + 2] == d.escape
            && let Some(b) = d.unescape_letter(raw[i + 1])
        {
            out.push(b);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a received ACK: MSA-1, MSA-2, and the ERR code and text if present. None when
/// it has no usable MSH or no MSA segment.
pub fn parse_ack(ack: &[u8]) -> Option<ParsedAck> {
    let header = parse_header_lenient(ack).ok()?;
    let d = header.delimiters;
    let segment = |id: &[u8]| {
        ack.split(|b| *b == CR || *b == LF)
            .find(|s| s.len() > 3 && s.starts_with(id) && s[3] == d.field)
            .map(|s| s.split(|b| *b == d.field).collect::<Vec<_>>())
    };
    let field =
        |seg: &[&[u8]], n: usize| -> Vec<u8> { seg.get(n).map_or(Vec::new(), |f| f.to_vec()) };
    let non_empty = |s: String| (!s.trim().is_empty()).then_some(s);

    let msa = segment(b"MSA")?;
    let code = String::from_utf8_lossy(trim(&field(&msa, 1))).into_owned();
    let control_id = String::from_utf8_lossy(&field(&msa, 2)).into_owned();
    let msa3 = non_empty(unescaped(&field(&msa, 3), &d));

    let (mut error_code, mut error_text) = (None, None);
    if let Some(err) = segment(b"ERR") {
        let err3 = field(&err, 3);
        let err1_ce = err
            .get(1)
            .and_then(|f| f.split(|b| *b == d.repetition).next())
            .and_then(|f| f.split(|b| *b == d.component).nth(3))
            .unwrap_or(&[]);
        let mut ce = err1_ce.split(|b| *b == d.subcomponent);
        let (old_code, old_text) = (ce.next().unwrap_or(&[]), ce.next().unwrap_or(&[]));
        error_code = non_empty(unescaped(trim(component(&err3, &d, 0)), &d))
            .or_else(|| non_empty(unescaped(trim(old_code), &d)));
        error_text = non_empty(unescaped(&field(&err, 8), &d))
            .or_else(|| msa3.clone())
            .or_else(|| non_empty(unescaped(component(&err3, &d, 1), &d)))
            .or_else(|| non_empty(unescaped(old_text, &d)));
    }
    Some(ParsedAck {
        code,
        control_id,
        error_code,
        error_text: error_text.or(msa3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CTX: AckContext<'static> = AckContext {
        control_id: "GW1",
        timestamp: "20240102030405+0000",
    };

    fn adt(msh15: &str) -> Vec<u8> {
        format!(
            "MSH|^~\\&|EPIC|HOSP|GATEWAY|FLEET|20240101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1|||{msh15}\rEVN|A01|20240101120000\rPID|||MRN123^^^HOSP^MR~OTHER||DOE^JOHN\r"
        )
        .into_bytes()
    }

    fn content_error() -> Verdict {
        Verdict::ContentError {
            condition: ErrorCondition::TableValueNotFound,
            text: "unknown character set".into(),
        }
    }

    fn rejected() -> Verdict {
        Verdict::Rejected {
            condition: ErrorCondition::UnsupportedMessageType,
            text: "no route for this message type".into(),
        }
    }

    fn segments(ack: &[u8]) -> Vec<String> {
        assert!(ack.ends_with(b"\r"), "segments end with CR");
        String::from_utf8_lossy(ack)
            .split('\r')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn ack_for(message: &[u8], verdict: &Verdict) -> Option<Vec<u8>> {
        let header = parse_header_lenient(message).ok();
        build_ack(header.as_ref(), verdict, &CTX)
    }

    #[test]
    fn reads_the_standard_msh() {
        let h = parse_header(&adt("")).unwrap();
        assert_eq!(h.delimiters(), Delimiters::STANDARD);
        assert_eq!(h.sending_application(), b"EPIC");
        assert_eq!(h.sending_facility(), b"HOSP");
        assert_eq!(h.sending_facility_id(), "HOSP");
        assert_eq!(h.message_type(), "ADT");
        assert_eq!(h.trigger_event(), "A01");
        assert_eq!(h.control_id(), b"MSG00001");
        assert_eq!(h.processing_id(), "P");
        assert_eq!(h.version(), "2.5.1");
        assert_eq!(h.accept_ack_type(), None);
        assert!(!h.enhanced_mode());
        assert_eq!(h.charset(), b"");
        assert_eq!(
            InboundHeader::patient_id(&adt("")),
            Some("MRN123".to_owned())
        );
    }

    #[test]
    fn header_values_are_normalised_where_they_are_text() {
        let msg = b"\xEF\xBB\xBF\r\nMSH|^~\\&|A|F\xE9D^x^y||| ||adt ^ a04|C1|T^A|2.3.1^DEU|||AL|NE||8859/1~UNICODE UTF-8\n";
        let h = parse_header(msg).unwrap();
        assert_eq!(h.sending_facility(), b"F\xE9D^x^y");
        assert_eq!(h.sending_facility_id(), "F?D");
        assert_eq!(h.message_type(), "ADT");
        assert_eq!(h.trigger_event(), "A04");
        assert_eq!(h.processing_id(), "T");
        assert_eq!(h.version(), "2.3.1");
        assert_eq!(h.accept_ack_type(), Some(AcceptAck::Always));
        assert!(h.enhanced_mode());
        assert_eq!(h.charset(), b"8859/1");
        assert_eq!(InboundHeader::patient_id(msg), None);
    }

    #[test]
    fn accept_ack_values() {
        for (value, expected) in [
            ("AL", Some(AcceptAck::Always)),
            ("ne", Some(AcceptAck::Never)),
            ("ER", Some(AcceptAck::Error)),
            ("SU", Some(AcceptAck::Success)),
            ("XX", Some(AcceptAck::Always)),
            ("", None),
        ] {
            let h = parse_header(&adt(value)).unwrap();
            assert_eq!(h.accept_ack_type(), expected, "{value}");
            assert_eq!(h.enhanced_mode(), !value.is_empty(), "{value}");
        }
        let only_16 = parse_header(b"MSH|^~\\&|||||||ADT^A01|1|P|2.5|||| AL\r").unwrap();
        assert_eq!(only_16.accept_ack_type(), None);
        assert!(only_16.enhanced_mode());
    }

    #[test]
    fn header_errors() {
        assert_eq!(parse_header(b""), Err(HeaderError::Empty));
        assert_eq!(parse_header(b"\r\n \t"), Err(HeaderError::Empty));
        assert_eq!(parse_header(b"PID|||1\r"), Err(HeaderError::NoMsh));
        assert_eq!(parse_header(b"EVN|MSH|^~\\&"), Err(HeaderError::NoMsh));
        for bad in [
            &b"MSH"[..],
            b"MSH\r|^~\\&|",
            b"MSHA^~\\&|",
            b"MSH|^~\\|A|",
            b"MSH|^~\\&#x|A|",
            b"MSH|^~^&|A|",
            b"MSH|^~|&|A|",
            b"MSH|^~\\a|A|",
            b"MSH|^~\\\x1c|A|",
            b"MSH|^~\\\xe9|A|",
            b"MSH\x0b^~\\&\x0bA",
            b"MSH|",
        ] {
            assert_eq!(
                parse_header(bad),
                Err(HeaderError::BadEncodingChars),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_header(b"MSH|^~\\&|A|B|C|D|||"),
            Err(HeaderError::MissingField("MSH-9"))
        );
        assert_eq!(
            parse_header(b"MSH|^~\\&|A|B|C|D|||^A01|1"),
            Err(HeaderError::MissingField("MSH-9"))
        );
        assert_eq!(
            parse_header(b"MSH|^~\\&|A|B|C|D|||A-DT^A01|1"),
            Err(HeaderError::InvalidField("MSH-9"))
        );
        assert_eq!(
            parse_header(b"MSH|^~\\&|A|B|C|D|||ADT^A01| |P|2.5"),
            Err(HeaderError::MissingField("MSH-10"))
        );
        assert_eq!(
            parse_header(b"MSH|^~\\&|A|B|C|D|||ADT^A01\rPID|1"),
            Err(HeaderError::MissingField("MSH-10"))
        );
        // Five encoding characters (2.7+ truncation) are fine, and so is an MSH with only the
        // fields the gateway needs.
        let h = parse_header(b"MSH|^~\\&#|||||||ADT^A01|1").unwrap();
        assert_eq!(h.delimiters().truncation, Some(b'#'));
        assert_eq!(h.version(), "");
    }

    #[test]
    fn header_error_codes() {
        assert_eq!(HeaderError::Empty.error_code().code(), "100");
        assert_eq!(HeaderError::NoMsh.error_code().code(), "100");
        assert_eq!(HeaderError::BadEncodingChars.error_code().code(), "102");
        assert_eq!(
            HeaderError::InvalidField("MSH-9").error_code().code(),
            "102"
        );
        assert_eq!(
            HeaderError::MissingField("MSH-10").error_code().code(),
            "101"
        );
        assert_eq!(ErrorCondition::ApplicationInternalError.code(), "207");
        assert_eq!(
            ErrorCondition::SegmentSequence.name(),
            "Segment sequence error"
        );
        assert_eq!(
            ErrorCondition::UnsupportedVersionId.name(),
            "Unsupported version id"
        );
    }

    /// The full table: each verdict, in original mode and with each MSH-15 value (and MSH-16
    /// only), sends the code HL7 says or nothing.
    #[test]
    fn ack_code_table() {
        let verdicts = [Verdict::Accepted, content_error(), rejected()];
        let table: [(&str, [Option<&str>; 3]); 6] = [
            ("", [Some("AA"), Some("AE"), Some("AR")]),
            ("AL", [Some("CA"), Some("CE"), Some("CR")]),
            ("NE", [None, None, None]),
            ("ER", [None, Some("CE"), Some("CR")]),
            ("SU", [Some("CA"), None, None]),
            ("|AL", [Some("CA"), Some("CE"), Some("CR")]),
        ];
        for (msh15, expected) in table {
            for (verdict, want) in verdicts.iter().zip(expected) {
                let ack = ack_for(&adt(msh15), verdict);
                let got = ack.as_deref().map(|a| parse_ack(a).unwrap().code);
                assert_eq!(got.as_deref(), want, "MSH-15 {msh15:?}, {verdict:?}");
            }
        }
    }

    #[test]
    fn accepted_ack_swaps_sender_and_receiver() {
        let ack = ack_for(&adt(""), &Verdict::Accepted).unwrap();
        assert_eq!(
            segments(&ack),
            vec![
                "MSH|^~\\&|GATEWAY|FLEET|EPIC|HOSP|20240102030405+0000||ACK^A01^ACK|GW1|P|2.5.1",
                "MSA|AA|MSG00001",
            ]
        );
        let h = parse_header(&ack).unwrap();
        assert_eq!(h.sending_application(), b"GATEWAY");
        assert_eq!(h.sending_facility(), b"FLEET");
        assert_eq!(h.field(5), b"EPIC");
        assert_eq!(h.field(6), b"HOSP");
        assert_eq!(h.message_type(), "ACK");
    }

    #[test]
    fn version_and_charset_are_echoed_byte_for_byte() {
        let msg = b"MSH|^~\\&|LAB|H\xF4PITAL^1.2^ISO|GW||20240101||ORU^R01|X9|D|2.6^DEU&&HL70399|||||DEU|8859/1\rOBX|1\r";
        let ack = ack_for(msg, &Verdict::Accepted).unwrap();
        let h = parse_header(&ack).unwrap();
        assert_eq!(h.field(4), b"");
        assert_eq!(h.field(6), b"H\xF4PITAL^1.2^ISO");
        assert_eq!(h.field(11), b"D");
        assert_eq!(h.field(12), b"2.6^DEU&&HL70399");
        assert_eq!(h.field(18), b"8859/1");
        assert_eq!(h.charset(), b"8859/1");
        assert_eq!(h.field(15), b"", "an ACK asks for no acknowledgement");
        // Without MSH-18 the ACK has none, and no trailing empty fields.
        let ack = ack_for(&adt(""), &Verdict::Accepted).unwrap();
        assert!(ack.starts_with(b"MSH") && !ack.windows(3).any(|w| w == b"||\r"));
        assert_eq!(parse_header(&ack).unwrap().field(18), b"");
    }

    #[test]
    fn error_ack_carries_err_with_0357_code_and_text() {
        let ack = ack_for(&adt(""), &rejected()).unwrap();
        assert_eq!(
            segments(&ack)[1..],
            [
                "MSA|AR|MSG00001",
                "ERR|||200^Unsupported message type^HL70357|E||||no route for this message type",
            ]
        );
        let parsed = parse_ack(&ack).unwrap();
        assert_eq!(parsed.code, "AR");
        assert_eq!(parsed.control_id, "MSG00001");
        assert_eq!(parsed.error_code.as_deref(), Some("200"));
        assert_eq!(
            parsed.error_text.as_deref(),
            Some("no route for this message type")
        );
    }

    #[test]
    fn error_text_delimiters_are_escaped() {
        let verdict = Verdict::ContentError {
            condition: ErrorCondition::ApplicationInternalError,
            text: "over 1|2^3~4\\5&6 bytes\r\nnext".into(),
        };
        let ack = ack_for(&adt(""), &verdict).unwrap();
        let err = &segments(&ack)[2];
        assert!(
            err.ends_with("|over 1\\F\\2\\S\\3\\R\\4\\E\\5\\T\\6 bytes  next"),
            "{err}"
        );
        let parsed = parse_ack(&ack).unwrap();
        assert_eq!(
            parsed.error_text.as_deref(),
            Some("over 1|2^3~4\\5&6 bytes  next")
        );
        assert_eq!(parsed.error_code.as_deref(), Some("207"));
        // With a truncation character, it is escaped as \P\.
        let msg = b"MSH|^~\\&#|A|B|C|D|||ADT^A01|1|P|2.7\r";
        let verdict = Verdict::Rejected {
            condition: ErrorCondition::ApplicationInternalError,
            text: "a#b".into(),
        };
        let ack = ack_for(msg, &verdict).unwrap();
        assert!(
            segments(&ack)[2].ends_with("|a\\P\\b"),
            "{:?}",
            segments(&ack)
        );
        assert_eq!(parse_ack(&ack).unwrap().error_text.as_deref(), Some("a#b"));
    }

    #[test]
    fn non_standard_delimiters_are_used_in_the_ack() {
        let msg = b"MSH#$%*@#SEND$X#FAC#RECV#RFAC#2024##ADT$A08#CTL$9#P#2.4#\rPID###ID7$$$A\r";
        let h = parse_header(msg).unwrap();
        assert_eq!(h.message_type(), "ADT");
        assert_eq!(h.trigger_event(), "A08");
        assert_eq!(h.control_id(), b"CTL$9");
        assert_eq!(InboundHeader::patient_id(msg), Some("ID7".into()));
        let verdict = Verdict::Rejected {
            condition: ErrorCondition::UnsupportedVersionId,
            text: "version 2#4 $ not *%@ supported".into(),
        };
        let ack = build_ack(Some(&h), &verdict, &CTX).unwrap();
        assert_eq!(
            segments(&ack),
            vec![
                "MSH#$%*@#RECV#RFAC#SEND$X#FAC#20240102030405+0000##ACK$A08$ACK#GW1#P#2.4",
                "MSA#AR#CTL$9#version 2*F*4 *S* not *E**R**T* supported",
                "ERR#$$$203@Unsupported version id@HL70357",
            ]
        );
        let parsed = parse_ack(&ack).unwrap();
        assert_eq!(parsed.control_id, "CTL$9");
        assert_eq!(parsed.error_code.as_deref(), Some("203"));
        assert_eq!(
            parsed.error_text.as_deref(),
            Some("version 2#4 $ not *%@ supported")
        );
    }

    #[test]
    fn versions_before_2_5_use_err_1() {
        for version in ["2.3", "2.3.1", "2.4", "2.1"] {
            let msg = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|C7|P|{version}\r");
            let ack = ack_for(msg.as_bytes(), &content_error()).unwrap();
            assert_eq!(
                segments(&ack)[1..],
                [
                    "MSA|AE|C7|unknown character set",
                    "ERR|^^^103&Table value not found&HL70357",
                ],
                "{version}"
            );
            let parsed = parse_ack(&ack).unwrap();
            assert_eq!(parsed.error_code.as_deref(), Some("103"));
            assert_eq!(parsed.error_text.as_deref(), Some("unknown character set"));
        }
        for version in ["2.5", "2.5.1", "2.8", "3", "", "x.y"] {
            let msg = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|C7|P|{version}\r");
            let ack = ack_for(msg.as_bytes(), &content_error()).unwrap();
            assert!(segments(&ack)[2].starts_with("ERR|||103^"), "{version}");
        }
    }

    #[test]
    fn no_usable_msh_is_answered_in_original_mode_with_standard_delimiters() {
        let verdict = Verdict::ContentError {
            condition: HeaderError::NoMsh.error_code(),
            text: HeaderError::NoMsh.to_string(),
        };
        let ack = build_ack(None, &verdict, &CTX).unwrap();
        assert_eq!(
            segments(&ack),
            vec![
                "MSH|^~\\&|||||20240102030405+0000||ACK|GW1|P|2.5.1",
                "MSA|AE|",
                "ERR|||100^Segment sequence error^HL70357|E||||the message does not start with an MSH segment",
            ]
        );
        let parsed = parse_ack(&ack).unwrap();
        assert_eq!(parsed.code, "AE");
        assert_eq!(parsed.control_id, "");
    }

    #[test]
    fn bad_encoding_characters_have_no_header_to_answer_from() {
        let msg = b"MSH|^^\\&|A|B|C|D|||ADT^A01|C1|P|2.5|||NE\r";
        assert_eq!(
            parse_header_lenient(msg),
            Err(HeaderError::BadEncodingChars)
        );
        let verdict = Verdict::ContentError {
            condition: HeaderError::BadEncodingChars.error_code(),
            text: HeaderError::BadEncodingChars.to_string(),
        };
        // MSH-15 cannot be read, so the answer is in original mode (sent despite the NE).
        let ack = ack_for(msg, &verdict).unwrap();
        let parsed = parse_ack(&ack).unwrap();
        assert_eq!(
            (parsed.code.as_str(), parsed.control_id.as_str()),
            ("AE", "")
        );
        assert_eq!(parsed.error_code.as_deref(), Some("102"));
    }

    #[test]
    fn missing_control_id_is_answered_in_kind() {
        let msg = b"MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5|||AL\r";
        let err = parse_header(msg).unwrap_err();
        assert_eq!(err, HeaderError::MissingField("MSH-10"));
        let verdict = Verdict::ContentError {
            condition: err.error_code(),
            text: err.to_string(),
        };
        let ack = ack_for(msg, &verdict).unwrap();
        assert_eq!(
            segments(&ack),
            vec![
                "MSH|^~\\&|C|D|A|B|20240102030405+0000||ACK^A01^ACK|GW1|P|2.5",
                "MSA|CE|",
                "ERR|||101^Required field missing^HL70357|E||||required field MSH-10 is missing",
            ]
        );
    }

    #[test]
    fn copied_fields_are_bounded_without_splitting_escapes() {
        let long: String = "ab\\F\\".repeat(100);
        let msg = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|{long}|P|2.5\r");
        let h = parse_header(msg.as_bytes()).unwrap();
        let echoed = h.echoed_control_id();
        assert!(echoed.len() <= COPIED_FIELD_BOUND);
        assert!(echoed.len() >= COPIED_FIELD_BOUND - 4);
        assert!(long.as_bytes().starts_with(&echoed));
        assert_eq!(echoed.iter().filter(|b| **b == b'\\').count() % 2, 0);
        let ack = build_ack(Some(&h), &Verdict::Accepted, &CTX).unwrap();
        assert_eq!(
            parse_ack(&ack).unwrap().control_id.as_bytes(),
            echoed.as_slice()
        );
        // A UTF-8 character is not split either.
        let long = "é".repeat(200);
        let msg = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|{long}|P|2.5\r");
        let echoed = parse_header(msg.as_bytes()).unwrap().echoed_control_id();
        assert_eq!(echoed.len(), 226);
        assert!(std::str::from_utf8(&echoed).is_ok());
        // Control bytes are dropped.
        let msg = b"MSH|^~\\&|A|B|C|D|||ADT^A01|C\x0b1\x1c\x00|P|2.5\r";
        assert_eq!(parse_header(msg).unwrap().echoed_control_id(), b"C1");
    }

    #[test]
    fn context_values_are_escaped() {
        let ctx = AckContext {
            control_id: "G|1\r",
            timestamp: "2024^",
        };
        let ack = build_ack(None, &Verdict::Accepted, &ctx).unwrap();
        let h = parse_header(&ack).unwrap();
        assert_eq!(h.control_id(), b"G\\F\\1 ");
        assert_eq!(h.field(7), b"2024\\S\\");
    }

    #[test]
    fn parse_ack_reads_foreign_acks() {
        let ack = b"MSH|^~\\&|R|RF|S|SF|2024||ACK|1|P|2.3\rMSA|AE|MSG7|Bad \\T\\ thing\r";
        assert_eq!(
            parse_ack(ack),
            Some(ParsedAck {
                code: "AE".into(),
                control_id: "MSG7".into(),
                error_code: None,
                error_text: Some("Bad & thing".into()),
            })
        );
        assert_eq!(parse_ack(b"MSH|^~\\&|R\r"), None, "no MSA");
        assert_eq!(parse_ack(b"MSA|AA|1\r"), None, "no MSH");
    }

    fn expected_code(header: Option<&InboundHeader>, verdict: &Verdict) -> Option<&'static str> {
        let accepted = matches!(verdict, Verdict::Accepted);
        let enhanced = header.is_some_and(|h| {
            !h.field(15).trim_ascii().is_empty() || !h.field(16).trim_ascii().is_empty()
        });
        if !enhanced {
            return Some(match verdict {
                Verdict::Accepted => "AA",
                Verdict::ContentError { .. } => "AE",
                Verdict::Rejected { .. } => "AR",
            });
        }
        let send = match header
            .unwrap()
            .field(15)
            .trim_ascii()
            .to_ascii_uppercase()
            .as_slice()
        {
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

    /// MSH-ish input: mostly a plausible header with random bytes spliced in.
    fn msh_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"MSH|^~\\&|".to_vec()),
            Just(b"MSH#$%*@#".to_vec()),
            Just(b"ADT^A01".to_vec()),
            Just(b"|".to_vec()),
            Just(b"^".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"AL".to_vec()),
            Just(b"NE".to_vec()),
            Just(b"ER".to_vec()),
            Just(b"SU".to_vec()),
            Just(b"2.3".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 230..300),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn any_input_gives_a_valid_ack(message in msh_like(),
                                       text in ".{0,300}",
                                       condition in 0usize..9) {
            let conditions = [
                ErrorCondition::SegmentSequence, ErrorCondition::RequiredFieldMissing,
                ErrorCondition::DataType, ErrorCondition::TableValueNotFound,
                ErrorCondition::UnsupportedMessageType, ErrorCondition::UnsupportedEventCode,
                ErrorCondition::UnsupportedProcessingId, ErrorCondition::UnsupportedVersionId,
                ErrorCondition::ApplicationInternalError,
            ];
            let condition = conditions[condition];
            let _ = parse_header(&message);
            let header = parse_header_lenient(&message).ok();
            for verdict in [
                Verdict::Accepted,
                Verdict::ContentError { condition, text: text.clone() },
                Verdict::Rejected { condition, text: text.clone() },
            ] {
                let ack = build_ack(header.as_ref(), &verdict, &CTX);
                let want = expected_code(header.as_ref(), &verdict);
                prop_assert_eq!(ack.is_some(), want.is_some());
                let Some(ack) = ack else { continue };
                prop_assert!(!ack.contains(&0x0B) && !ack.contains(&0x1C) && !ack.contains(&b'\n'));
                let h = parse_header(&ack);
                prop_assert!(h.is_ok(), "{:?}: {}", h, String::from_utf8_lossy(&ack));
                prop_assert_eq!(h.unwrap().message_type(), "ACK");
                let parsed = parse_ack(&ack).unwrap();
                prop_assert_eq!(Some(parsed.code.as_str()), want);
                let echoed = header.as_ref().map(InboundHeader::echoed_control_id).unwrap_or_default();
                prop_assert_eq!(parsed.control_id, String::from_utf8_lossy(&echoed).into_owned());
                if let Verdict::Rejected { .. } | Verdict::ContentError { .. } = verdict {
                    prop_assert_eq!(parsed.error_code.as_deref(), Some(condition.code()));
                }
            }
        }
    }
}

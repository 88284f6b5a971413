use fleet_core::ErrorCode;

/// Why a message was refused. `detail` names segments, fields and positions only — never a
/// field value that could hold PHI — so it can go to logs and DLQ metadata as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct Hl7Error {
    pub code: ErrorCode,
    pub detail: String,
}

impl Hl7Error {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

pub(crate) fn err<T>(code: ErrorCode, detail: impl Into<String>) -> Result<T, Hl7Error> {
    Err(Hl7Error::new(code, detail))
}

/// Message types of HL7 table 0076 (v2.1 to v2.9). A detail names MSH-9.1 only when it is
/// one of these: a value from a closed list is a code, anything else is producer text (a name
/// typed into the wrong field fits any "looks like a code" charset).
const MESSAGE_TYPES: &[&str] = &[
    "ACK", "ADR", "ADT", "ARD", "BAR", "BPS", "BRP", "BRT", "BTS", "CCF", "CCI", "CCM", "CCQ",
    "CCR", "CCU", "CQU", "CRM", "CSU", "DBC", "DEL", "DEO", "DER", "DFT", "DOC", "DPR", "DSR",
    "EAC", "EAN", "EAR", "EDR", "EHC", "ERP", "ESR", "ESU", "INR", "INU", "LSR", "LSU", "MCF",
    "MDM", "MFD", "MFK", "MFN", "MFQ", "MFR", "NMD", "NMQ", "NMR", "OMB", "OMD", "OMG", "OMI",
    "OML", "OMN", "OMP", "OMQ", "OMS", "OPL", "OPR", "OPU", "ORA", "ORB", "ORD", "ORF", "ORG",
    "ORI", "ORL", "ORM", "ORN", "ORP", "ORR", "ORS", "ORU", "ORX", "OSM", "OSQ", "OSR", "OSU",
    "OUL", "PEX", "PGL", "PIN", "PMU", "PPG", "PPP", "PPR", "PPT", "PPV", "PRR", "PTR", "QBP",
    "QCK", "QCN", "QRY", "QSB", "QSX", "QVR", "RAR", "RAS", "RCI", "RCL", "RDE", "RDO", "RDR",
    "RDS", "RDY", "REF", "RER", "RGR", "RGV", "ROC", "ROD", "ROR", "RPA", "RPI", "RPL", "RPR",
    "RQA", "RQC", "RQI", "RQP", "RQQ", "RRA", "RRD", "RRE", "RRG", "RRI", "RSP", "RTB", "SCN",
    "SDN", "SDR", "SIU", "SLN", "SLR", "SMD", "SQM", "SQR", "SRM", "SRR", "SSR", "SSU", "STC",
    "STI", "SUR", "TBR", "TCR", "TCU", "UDM", "VXQ", "VXR", "VXU", "VXX",
];

/// Character sets of HL7 table 0211 plus the spellings the guard accepts.
const CHARSETS: &[&str] = &[
    "ASCII",
    "US-ASCII",
    "8859/1",
    "8859/2",
    "8859/3",
    "8859/4",
    "8859/5",
    "8859/6",
    "8859/7",
    "8859/8",
    "8859/9",
    "8859/15",
    "ISO-8859-1",
    "ISO8859-1",
    "ISO IR6",
    "ISO IR14",
    "ISO IR87",
    "ISO IR159",
    "GB 18030-2000",
    "KS X 1001",
    "CNS 11643-1992",
    "BIG-5",
    "UNICODE",
    "UNICODE UTF-8",
    "UNICODE UTF-16",
    "UNICODE UTF-32",
    "UTF-8",
    "UTF8",
];

/// MSH-9.1 as a detail may show it: a message type of table 0076, else its length only.
pub(crate) fn shown_message_code(s: &str) -> String {
    match MESSAGE_TYPES.iter().find(|t| **t == s) {
        Some(t) => (*t).to_string(),
        None => format!(
            "a value of {} characters outside HL7 table 0076",
            s.chars().count()
        ),
    }
}

/// A trigger event code as a detail may show it: a letter and two or three digits (`R01`,
/// `A99`, `Z01`) cannot spell anything, so it is shown; anything else by its length only.
pub(crate) fn shown_trigger(s: &str) -> String {
    let b = s.as_bytes();
    let code_shaped = (3..=4).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1..].iter().all(u8::is_ascii_digit);
    if code_shaped {
        s.to_string()
    } else {
        format!("of {} characters", s.chars().count())
    }
}

/// MSH-18 as a detail may show it: a name of table 0211, else its length only.
pub(crate) fn shown_charset(s: &str) -> String {
    match CHARSETS.iter().find(|t| **t == s) {
        Some(t) => (*t).to_string(),
        None => format!("of {} characters outside HL7 table 0211", s.chars().count()),
    }
}

/// Message code and trigger for `inspect`, only when both are codes (see above).
pub(crate) fn message_type_code(code: &str, trigger: &str) -> Option<String> {
    let code = MESSAGE_TYPES.iter().find(|t| **t == code)?;
    if trigger.is_empty() {
        return Some((*code).to_string());
    }
    let t = shown_trigger(trigger);
    (t == trigger).then(|| format!("{code}^{t}"))
}

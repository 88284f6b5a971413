//! Sample documents the project writes itself, for the demo and the tests: short clinical
//! letters about invented patients. Their words let a test check that no log line carries
//! document text.

/// One sample: a file name (with the spaces and `+` real uploads have) and its text.
#[derive(Debug, Clone, Copy)]
pub struct SampleDoc {
    /// What it is, for output that must not show the key (keys carry the invented names).
    pub title: &'static str,
    pub key: &'static str,
    pub text: &'static str,
    /// Medications the text names, as a reader would list them.
    pub medications: &'static [&'static str],
    /// A condition the text explicitly rules out (so the extractor must negate it).
    pub negated: &'static str,
}

pub const REFERRAL: SampleDoc = SampleDoc {
    title: "referral letter",
    key: "referrals/Quillfeather referral 2026+final.pdf",
    text: "Northfield Clinic referral letter\n\
Patient: Rosalind Quillfeather, born 12 April 1961.\n\
\n\
Dear colleague, thank you for seeing this patient with type 2 diabetes mellitus and\n\
hypertension. She reports fatigue. She denies chest pain.\n\
\n\
Current medications:\n\
metformin 500 mg oral tablet twice daily\n\
lisinopril 10 mg oral tablet daily\n\
atorvastatin 20 mg tablet at bedtime\n\
\n\
Recent hemoglobin A1c was 8.1 percent. Please advise on insulin.\n",
    medications: &["metformin", "lisinopril", "atorvastatin"],
    negated: "chest pain",
};

pub const DISCHARGE: SampleDoc = SampleDoc {
    title: "discharge summary scan",
    key: "discharge/Ashbourne discharge scan.png",
    text: "Discharge summary\n\
Patient: Edmund Ashbourne\n\
Diagnosis: community acquired pneumonia.\n\
No evidence of pulmonary embolism.\n\
Discharge medications:\n\
amoxicillin 500 mg capsule three times daily for 7 days\n\
ibuprofen 400 mg tablet as needed for pain\n\
Follow up chest x-ray in six weeks.\n",
    medications: &["amoxicillin", "ibuprofen"],
    negated: "pulmonary embolism",
};

pub const LAB_NOTE: SampleDoc = SampleDoc {
    title: "lab follow-up note",
    key: "notes/Marchetti lab note.txt",
    text: "Lab follow-up for Giulia Marchetti.\n\
Potassium and creatinine are normal. Continue amlodipine 5 mg daily.\n\
Patient has no fever.\n",
    medications: &["amlodipine"],
    negated: "fever",
};

pub const ALL: &[SampleDoc] = &[REFERRAL, DISCHARGE, LAB_NOTE];

/// Words of the samples that must never reach a log line: the invented names and a few
/// document-only phrases.
pub fn secrets() -> Vec<&'static str> {
    vec![
        "Quillfeather",
        "Rosalind",
        "Ashbourne",
        "Edmund",
        "Marchetti",
        "Giulia",
        "Northfield",
        "metformin",
        "amoxicillin",
        "pneumonia",
        // The birth date as the letter writes it and as a date entity normalises it. Not the
        // bare year: four digits turn up in any log (ports, pids, durations), which made the
        // scan fail at random on a clean log.
        "12 April 1961",
        "1961-04-12",
    ]
}

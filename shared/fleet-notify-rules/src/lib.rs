//! The parts of the notify worker that only compute: the rules file (EventBridge patterns,
//! allow-listed fields, minijinja templates), the check of rendered text against the event's
//! PHI values, and the parser of the bodies the notify queue receives. No I/O and no AWS, so
//! the fuzz targets link them without the SDKs.

pub mod event;
pub mod phi;
pub mod rules;

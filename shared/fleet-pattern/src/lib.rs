//! The EventBridge event-pattern subset shared by the local bus and the notify worker.

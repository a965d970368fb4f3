//! The `NOTIFY` channel that wakes every worker's scheduler. Owned here, next
//! to the statements that make deliveries due, so storage never reaches up
//! into the pipeline for it.

/// The channel other processes `NOTIFY` when they make deliveries due now.
pub const DUE_CHANNEL: &str = "webhookd_due";

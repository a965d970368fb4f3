//! The CRM event domain: the catalogue of events, the broker message and the
//! delivery envelope, subscription patterns with wildcards, payload filters,
//! body templates, and a delivery's life (claimed, attempted, judged,
//! recorded) with its retry rules.
//!
//! Pure code: no I/O, so every rule here is unit-tested exhaustively and shared
//! by the producer, the daemon and the admin API.

pub mod breaker;
pub(crate) mod catalogue;
pub mod delivery;
pub(crate) mod filter;
pub(crate) mod message;
pub(crate) mod ordering;
pub(crate) mod pattern;
pub(crate) mod presets;
pub mod receiver_auth;
pub(crate) mod retry;
pub mod routing;
pub mod secret_box;
pub(crate) mod template;
pub(crate) mod visibility;
pub mod webhook_secrets;

pub use breaker::{BreakerPolicy, BreakerState};
pub use catalogue::{
    find_event, is_operational, reports_failure, EventSpec, CATALOGUE, DELIVERY_FAILED,
    OPERATIONAL_EVENTS, TEST_EVENT, WEBHOOK_DISABLED,
};
pub use delivery::NewEvent;
pub use filter::{filter_subject, Filter, FilterError};
pub use message::{derive_event_id, render_envelope, EventMessage, MessageError, ParsedMessage};
pub use ordering::{DeliveryOrder, UnknownOrder};
pub use pattern::{candidate_patterns, EventPattern, PatternError};
pub use presets::{
    find_preset, preset_of, sample_envelope, sample_envelope_in, unfilled_placeholder, Preset,
    PresetLanguage, PresetText, PRESETS,
};
pub use receiver_auth::{AuthKind, AuthView, ReceiverAuth, StoredAuth};
pub use retry::{Jitter, RetryDecision, RetryPolicy, RetrySchedule, ScheduleError};
pub use secret_box::{KeyListError, SecretBoxError, SecretKeys};
pub use template::{RenderTooLarge, Template, TemplateError};
pub use visibility::is_visible_to;

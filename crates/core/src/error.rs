//! Domain errors. Each has a stable machine code; each dialect maps these, in
//! one place, to its own wire format and vocabulary.

use serde::Serialize;

/// Result of a core rule or store command.
pub type CoreResult<T> = Result<T, CoreError>;

/// What can go wrong in the domain, independent of any dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CoreError {
    /// Input failed a domain rule; `field` names the offending input.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The entity does not exist for this tenant.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// The time is already taken for a practitioner or address.
    #[error("the time {start}..{end} overlaps another appointment of the same {resource}")]
    SlotTaken { resource: &'static str, start: String, end: String },
    /// The entity already exists (unique key).
    #[error("{entity} already exists: {key}")]
    AlreadyExists { entity: &'static str, key: String },
    /// A status change the status machine does not allow.
    #[error("an appointment cannot go from {from} to {to}")]
    InvalidTransition { from: String, to: String },
    /// A tenant setting forbids the action (notice, cutoffs, ...).
    #[error("{0}")]
    PolicyViolation(String),
    /// The stored data changed since it was read (optimistic concurrency).
    #[error("{entity} {id} was changed concurrently; retry")]
    Conflict { entity: &'static str, id: String },
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid { field: field.into(), message: message.into() }
    }

    /// Shorthand for [`CoreError::NotFound`].
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        CoreError::NotFound { entity, id: id.to_string() }
    }

    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::Invalid { .. } => "invalid",
            CoreError::NotFound { .. } => "not_found",
            CoreError::SlotTaken { .. } => "slot_taken",
            CoreError::AlreadyExists { .. } => "already_exists",
            CoreError::InvalidTransition { .. } => "invalid_transition",
            CoreError::PolicyViolation(_) => "policy_violation",
            CoreError::Conflict { .. } => "conflict",
        }
    }
}

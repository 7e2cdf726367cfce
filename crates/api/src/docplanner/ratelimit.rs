//! Docplanner rate limits.

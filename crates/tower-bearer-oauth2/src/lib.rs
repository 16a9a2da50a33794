//! OAuth 2.0 (being written).

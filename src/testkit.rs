//! Repository conformance suite (to be written).

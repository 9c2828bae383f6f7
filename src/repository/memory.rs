//! The in-memory store (to be written).

/// A thread-safe in-memory [`Repository`](super::Repository).
#[derive(Debug, Default)]
pub struct MemoryStore {}

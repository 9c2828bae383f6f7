//! The thin shell (to be written).

//! Targeting (being written).

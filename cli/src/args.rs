//! CLI argument parsing (being written).

//! Execution functions (being written).

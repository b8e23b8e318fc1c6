//! Grains (being written).

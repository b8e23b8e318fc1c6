//! Benchmark tooling, not installed: the minion swarm, the whole-process measurements and
//! their report.

pub mod grains;
pub mod procs;
pub mod report;
pub mod scenarios;
pub mod swarm;

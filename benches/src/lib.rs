//! Benchmarks for tower-bearer.

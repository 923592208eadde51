//! percore-loadgen
fn main() {}

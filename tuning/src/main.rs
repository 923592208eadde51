//! percore-tune
fn main() {}

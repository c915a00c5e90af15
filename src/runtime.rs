//! Threads and their lifecycles: one monoio runtime per worker thread (io_uring, or epoll when
//! io_uring is unavailable), a control loop on the main thread (config reload, signals, shutdown)
//! and an admin thread for metrics and readiness.
//!
//! Not here: request handling (`http`), config parsing (`config`).

pub mod control;
pub mod ctx;
pub mod fetch;
pub mod keys;
pub mod worker;

pub use control::{run, ConfigSource, RunOptions};

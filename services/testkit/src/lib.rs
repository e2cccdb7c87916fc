//! Test support shared by OrderShop's test suites.
//!
//! Tests talk to real parts: [`RedisServer`] starts a real `redis-server` on
//! a free loopback port in a private temporary folder (or reuses the server
//! named by `REDIS_URL`), so test binaries run in parallel and leave nothing
//! behind. When `redis-server` is missing the start fails with a message that
//! says how to install it; tests never skip.
#![deny(warnings)]

pub mod earlier_release;
mod infra;
mod poll;
mod ports;
mod redis_server;
pub mod scenarios;
pub mod shop_api;

pub use infra::Infra;
pub use poll::{eventually, eventually_async};
pub use ports::free_port;
pub use redis_server::{RedisServer, RedisServerError};
pub use shop_api::ShopApi;

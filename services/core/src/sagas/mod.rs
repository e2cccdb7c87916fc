//! The sagas: deciders that react to recorded events rather than to client
//! commands. Each is idempotent: handling the same event again returns no
//! new events (or events with the same event ids, which the store keeps
//! once). Each module names the topics its view must fold.

pub mod order_status;
pub mod shipping;
pub mod stock;

//! `ordershop-loadgen`: concurrent clients run full order flows against a
//! running OrderShop over its REST API, then the stock is checked.
//!
//! | module | what |
//! |---|---|
//! | [`api`] | one run as a library call (the chaos command drives load with it) |
//! | [`cli`] | arguments, one run per client count, exit code |
//! | [`lists`] | `ordershop-lists`: every list route read whole and walked page by page |
//! | `run` | seed, drive the clients, check — one run |
//! | `seed` | products, customers and inventories of a run |
//! | `flow` | one flow: cart → order → IN_STOCK → billing → SHIPPED |
//! | `shop` | the REST calls, timed and counted per route |
//! | `stock_check` | inventories = seed − what the reserving orders took |
//! | `stats` | latency samples, percentiles, per-route counts |
//! | `report`, `render` | the numbers and checks, as Markdown or JSON |
//! | `machine` | CPU, memory and load average of this machine |

pub mod api;
pub mod cli;
mod flow;
pub mod lists;
mod machine;
mod render;
mod report;
pub mod restarts;
mod run;
mod seed;
mod shop;
mod stats;
mod stock_check;

//! OrderShop's API gateway.

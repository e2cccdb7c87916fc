//! `ordershop-lists`: every list route of a running OrderShop, read whole
//! and walked page by page. See `ordershop-lists --help`.

fn main() -> std::process::ExitCode {
    ordershop_loadgen::lists::main()
}

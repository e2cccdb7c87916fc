//! `ordershop-loadgen`: full order flows against a running OrderShop. See
//! `ordershop-loadgen --help`.

fn main() -> std::process::ExitCode {
    ordershop_loadgen::cli::main()
}

//! `ordershop <role>` runs one OrderShop service; `ordershop local` runs
//! them all with a Redis of its own. See `ordershop --help`.

fn main() -> std::process::ExitCode {
    ordershop::cli::main()
}

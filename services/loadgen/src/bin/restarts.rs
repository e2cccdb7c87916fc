//! `ordershop-restarts`: how long each role of a running `ordershop local`
//! takes to serve again after a `kill -9`. See `ordershop-restarts --help`.

fn main() -> std::process::ExitCode {
    ordershop_loadgen::restarts::main()
}

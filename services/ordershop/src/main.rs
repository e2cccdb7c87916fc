//! `ordershop <role>` runs one OrderShop service; `ordershop local` runs
//! them all with a Redis of its own. See `ordershop --help`.

// Every message allocates and frees a handful of small buffers (HTTP/2
// frames, protobuf, JSON); under load glibc's malloc was ~9% of the shop's
// CPU (perf), and mimalloc takes less. Measured in the README (Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ordershop::cli::main()
}

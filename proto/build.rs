//! Compiles every `.proto` under `ordershop/` with protox (pure Rust), so no
//! system `protoc` is needed and the build works offline.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "ordershop/eventstore/v1/eventstore.proto",
    "ordershop/queue/v1/queue.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=ordershop");
    let fds = protox::compile(PROTOS, ["."])?;

    // The encoded descriptor set backs gRPC server reflection.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("ordershop_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}

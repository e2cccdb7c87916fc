//! Generated gRPC types for OrderShop, one module per versioned package.
#![allow(unreachable_pub, missing_debug_implementations)]

pub mod eventstore {
    pub mod v1 {
        tonic::include_proto!("ordershop.eventstore.v1");
    }
}

pub mod queue {
    pub mod v1 {
        tonic::include_proto!("ordershop.queue.v1");
    }
}

/// Encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ordershop_descriptor.bin"));

pub mod serving;
pub mod snapshot_transfer;
pub mod tls;

//! A view snapshot on the wire: its header, then its bytes in chunks. The
//! event store and its client each send and receive one (`PutSnapshot`,
//! `GetSnapshot`), so both ends of both calls go through here.

use tonic::{Code, Status, Streaming};

use crate::eventstore::v1::{SnapshotChunk, SnapshotHeader, snapshot_chunk::Part};

/// Bytes per chunk: well under gRPC's 4 MiB default message limit.
pub const CHUNK: usize = 1024 * 1024;

/// The messages that carry `header` and `data`. Each chunk is copied only
/// when the stream takes it, so a transfer holds at most one chunk beside
/// the snapshot.
pub fn parts(
    header: SnapshotHeader,
    data: Vec<u8>,
) -> impl Iterator<Item = SnapshotChunk> + Send + 'static {
    let chunks = (0..data.len().div_ceil(CHUNK)).map(move |i| {
        let end = ((i + 1) * CHUNK).min(data.len());
        Part::Data(data[i * CHUNK..end].to_vec())
    });
    std::iter::once(Part::Header(header))
        .chain(chunks)
        .map(|part| SnapshotChunk { part: Some(part) })
}

/// The first message, which must be the header. A malformed stream fails
/// with `malformed` (the server: the caller's mistake; the client: the
/// server's).
pub async fn receive_header(
    chunks: &mut Streaming<SnapshotChunk>,
    malformed: Code,
) -> Result<SnapshotHeader, Status> {
    match chunks.message().await?.and_then(|c| c.part) {
        Some(Part::Header(header)) => Ok(header),
        _ => Err(Status::new(malformed, "a snapshot starts with its header")),
    }
}

/// The bytes after the header: exactly `size` of them, or `malformed`.
pub async fn receive_data(
    chunks: &mut Streaming<SnapshotChunk>,
    size: u64,
    malformed: Code,
) -> Result<Vec<u8>, Status> {
    let mut data = Vec::with_capacity(size as usize);
    while let Some(chunk) = chunks.message().await? {
        let Some(Part::Data(bytes)) = chunk.part else {
            return Err(Status::new(malformed, "a snapshot has one header"));
        };
        if (data.len() + bytes.len()) as u64 > size {
            return Err(Status::new(
                malformed,
                format!("snapshot longer than the {size} bytes its header announced"),
            ));
        }
        data.extend_from_slice(&bytes);
    }
    if data.len() as u64 != size {
        return Err(Status::new(
            malformed,
            format!(
                "snapshot ended after {} of the {size} bytes its header announced",
                data.len()
            ),
        ));
    }
    Ok(data)
}

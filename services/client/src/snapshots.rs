//! Storing and loading a service's view snapshot through the event store.

use std::collections::BTreeMap;
use std::time::Duration;

use ordershop_proto::eventstore::v1::{self as pb, snapshot_chunk::Part};
use tonic::Code;

use crate::{ClientError, EventStore};

/// Bytes per chunk sent: well under gRPC's 4 MiB message limit.
const CHUNK: usize = 1024 * 1024;
/// Deadline of one transfer: a large snapshot takes a while, and a
/// transfer that fails is simply tried again at the next interval.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(120);

/// A view as of a position per topic, in the layout `format` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSnapshot {
    pub format: u32,
    /// Topic -> entry id of the last event the snapshot holds.
    pub positions: BTreeMap<String, String>,
    pub data: Vec<u8>,
    /// Store it even over a newer one: the stored one turned out unusable.
    pub replace_newer: bool,
}

impl EventStore {
    /// Stores `snapshot` as `name`'s (the caller's service name). `false`
    /// when the store holds a newer one already.
    pub async fn put_snapshot(
        &self,
        name: &str,
        snapshot: ViewSnapshot,
    ) -> Result<bool, ClientError> {
        let header = pb::SnapshotHeader {
            name: name.to_owned(),
            format: snapshot.format,
            positions: snapshot.positions.into_iter().collect(),
            size: snapshot.data.len() as u64,
            replace_newer: snapshot.replace_newer,
        };
        // Each chunk is copied as the stream is read, so the transfer holds
        // at most one chunk beside the snapshot.
        let data = snapshot.data;
        let chunks = (0..data.len().div_ceil(CHUNK)).map(move |i| {
            let end = ((i + 1) * CHUNK).min(data.len());
            Part::Data(data[i * CHUNK..end].to_vec())
        });
        let parts = std::iter::once(Part::Header(header))
            .chain(chunks)
            .map(|part| pb::SnapshotChunk { part: Some(part) });
        let mut request = tonic::Request::new(futures::stream::iter(parts));
        request.set_timeout(TRANSFER_DEADLINE);
        let reply = self.client().put_snapshot(request).await?;
        Ok(reply.into_inner().stored)
    }

    /// The snapshot stored as `name`'s, if any.
    pub async fn get_snapshot(&self, name: &str) -> Result<Option<ViewSnapshot>, ClientError> {
        let mut request = tonic::Request::new(pb::GetSnapshotRequest {
            name: name.to_owned(),
        });
        request.set_timeout(TRANSFER_DEADLINE);
        let mut chunks = match self.client().get_snapshot(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Ok(None),
            Err(status) => return Err(status.into()),
        };
        let header = match chunks.message().await?.and_then(|c| c.part) {
            Some(Part::Header(header)) => header,
            _ => {
                return Err(ClientError::Rpc(tonic::Status::data_loss(
                    "a snapshot without its header",
                )));
            }
        };
        let mut data = Vec::with_capacity(header.size as usize);
        while let Some(chunk) = chunks.message().await? {
            if let Some(Part::Data(bytes)) = chunk.part {
                data.extend_from_slice(&bytes);
            }
        }
        if data.len() as u64 != header.size {
            return Err(ClientError::Rpc(tonic::Status::data_loss(format!(
                "snapshot ended after {} of its {} bytes",
                data.len(),
                header.size
            ))));
        }
        Ok(Some(ViewSnapshot {
            format: header.format,
            positions: header.positions.into_iter().collect(),
            data,
            replace_newer: false,
        }))
    }
}

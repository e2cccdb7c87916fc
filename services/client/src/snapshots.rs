//! Storing and loading a service's view snapshot through the event store.

use std::collections::BTreeMap;
use std::time::Duration;

use ordershop_proto::eventstore::v1 as pb;
use ordershop_proto::snapshot_transfer;
use tonic::Code;

use crate::{ClientError, EventStore};

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
        let parts = snapshot_transfer::parts(header, snapshot.data);
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
        // A malformed reply is the server's fault: data loss, not our input.
        let header = snapshot_transfer::receive_header(&mut chunks, Code::DataLoss).await?;
        let data =
            snapshot_transfer::receive_data(&mut chunks, header.size, Code::DataLoss).await?;
        Ok(Some(ViewSnapshot {
            format: header.format,
            positions: header.positions.into_iter().collect(),
            data,
            replace_newer: false,
        }))
    }
}

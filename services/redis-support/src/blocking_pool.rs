use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::{AsyncConnectionConfig, aio::MultiplexedConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle blocking connections kept for reuse; more are opened on demand and
/// closed when returned to a full pool.
const MAX_IDLE: usize = 64;

/// Blocking commands in progress at once. Each holds a Redis connection for
/// up to its wait, and each gRPC long poll or sync call holds one, so
/// clients opening long polls without end would otherwise open Redis
/// connections without end; beyond this many, a caller waits its turn
/// (`Redis::blocking_until` bounds that wait by the caller's deadline).
pub(crate) const MAX_BLOCKING: usize = 512;

/// Connections for blocking commands. Each is used by one caller at a time
/// and has no response timeout: the command's own BLOCK/timeout argument
/// bounds the wait.
#[derive(Clone)]
pub struct BlockingPool {
    client: redis::Client,
    idle: Arc<Mutex<Vec<MultiplexedConnection>>>,
    in_use: Arc<Semaphore>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

impl BlockingPool {
    pub fn new(client: redis::Client) -> Self {
        Self {
            client,
            idle: Arc::default(),
            in_use: Arc::new(Semaphore::new(MAX_BLOCKING)),
        }
    }

    pub async fn get(&self) -> redis::RedisResult<BlockingConnection> {
        let permit = self
            .in_use
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let reused = self.idle.lock().expect("pool lock").pop();
        let conn = match reused {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_response_timeout(None)
                    .set_connection_timeout(Some(Duration::from_secs(2)));
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        Ok(BlockingConnection {
            conn: Some(conn),
            pool: self.idle.clone(),
            healthy: true,
            _permit: permit,
        })
    }
}

/// A borrowed blocking connection; one that failed or was interrupted
/// mid-command is not reused.
pub struct BlockingConnection {
    conn: Option<MultiplexedConnection>,
    pool: Arc<Mutex<Vec<MultiplexedConnection>>>,
    healthy: bool,
    /// Counts this connection among the [`MAX_BLOCKING`] until dropped.
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("healthy", &self.healthy)
            .finish()
    }
}

impl BlockingConnection {
    /// Runs one blocking command. If the future is dropped mid-command (a
    /// cancelled subscription) or the command fails, the connection may
    /// still be parked in a server-side BLOCK, so it is not reused.
    pub async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone());
        let (value,): (T,) = self.query_pipeline(&pipe).await?;
        Ok(value)
    }

    /// Runs a pipeline that starts with a blocking command: Redis runs the
    /// rest only once that command returns, so what follows sees the state
    /// right after it, without a round trip of its own. Not reused after a
    /// failure or an interruption, like [`Self::query`].
    pub async fn query_pipeline<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        self.healthy = false;
        let conn = self.conn.as_mut().expect("connection present until drop");
        let result = pipe.query_async(conn).await;
        self.healthy = result.is_ok();
        result
    }
}

impl Drop for BlockingConnection {
    fn drop(&mut self) {
        if !self.healthy {
            return;
        }
        if let Some(conn) = self.conn.take() {
            let mut idle = self.pool.lock().expect("pool lock");
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

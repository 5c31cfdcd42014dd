//! Servers that misbehave on purpose: one that answers every connection with
//! bytes that are not HTTP, and a URL whose port has nobody listening.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::recorder::RecorderError;

/// Answers every connection with fixed bytes (read once, write, close).
pub struct GarbageServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for GarbageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GarbageServer {
    /// Starts on 127.0.0.1 with a free port; every connection gets `reply`.
    pub async fn start(reply: &'static [u8]) -> Result<Self, RecorderError> {
        let want = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = TcpListener::bind(want)
            .await
            .map_err(|source| RecorderError::Bind { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| RecorderError::Bind { addr: want, source })?;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A loopback URL whose port was just free: connecting is refused (a port
/// reused by another process in between would make a test flaky, which the
/// kernel's ephemeral port rotation makes unlikely).
pub fn closed_port_url(path: &str) -> Result<String, RecorderError> {
    let want = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = std::net::TcpListener::bind(want)
        .map_err(|source| RecorderError::Bind { addr: want, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| RecorderError::Bind { addr: want, source })?;
    drop(listener);
    Ok(format!("http://{addr}{path}"))
}

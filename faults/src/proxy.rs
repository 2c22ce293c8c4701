//! A loopback TCP forwarder whose backend can be switched: the stand-in for what moves
//! clients to a promoted PostgreSQL in production (a Kubernetes Service or a
//! virtual IP following the leader, HAProxy with `on-marked-down shutdown-sessions`).
//! Switching cuts every open connection, as those do, so no client keeps talking to
//! the old server.

use std::sync::Arc;

use anyhow::Result;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    target: watch::Sender<u16>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = watch::channel(target);
        let rx = Arc::new(rx);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = (*rx).clone();
                tokio::spawn(async move {
                    let backend = *rx.borrow_and_update();
                    let _ = forward(client, backend, &mut rx).await;
                });
            }
        });
        Ok(Proxy {
            port,
            target: tx,
            task,
        })
    }

    /// Sends new connections to `port` and cuts the open ones.
    pub fn switch(&self, port: u16) {
        self.target.send_replace(port);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut client: TcpStream,
    backend: u16,
    switched: &mut watch::Receiver<u16>,
) -> Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", backend)).await?;
    tokio::select! {
        r = copy_bidirectional(&mut client, &mut server) => { r?; }
        _ = switched.changed() => {}
    }
    Ok(())
}

//! [`TcpManager`]: pooled TCP connections to one address.

use std::io;

use tokio::net::TcpStream;

use crate::Manager;

/// Makes TCP connections to one address (`host:port`, resolved at each
/// connection), with `TCP_NODELAY` set.
///
/// A connection counts as broken once the peer has closed it, or sent bytes
/// nobody asked for (a pooled connection between requests should be
/// quiet): both are seen without a round trip, which is also all a check
/// does, since plain TCP has no ping.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_pool::tcp::TcpManager;
/// use seawall_pool::{Pool, PoolConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let address = listener.local_addr()?.to_string();
/// tokio::spawn(async move {
///     while let Ok((mut socket, _)) = listener.accept().await {
///         tokio::spawn(async move {
///             let mut byte = [0];
///             while socket.read_exact(&mut byte).await.is_ok() {
///                 let _ = socket.write_all(&byte).await;
///             }
///         });
///     }
/// });
///
/// let config = PoolConfig::builder().max_size(2).min_idle(0).build()?;
/// let pool = Pool::new(TcpManager::new(address), config).await?;
/// let mut conn = pool.get().await?;
/// conn.write_all(b"x").await?;
/// let mut echo = [0];
/// conn.read_exact(&mut echo).await?;
/// assert_eq!(&echo, b"x");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TcpManager {
    address: String,
}

impl TcpManager {
    /// Connections to `address` (`host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
        }
    }

    /// The address connected to.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Whether the peer closed the stream or sent something unasked, read
/// without waiting.
fn peer_done(stream: &TcpStream) -> bool {
    let mut byte = [0];
    match stream.try_read(&mut byte) {
        // Ok(0) is the end of the stream; any byte is one nobody asked for.
        Ok(_) => true,
        Err(error) => error.kind() != io::ErrorKind::WouldBlock,
    }
}

impl Manager for TcpManager {
    type Object = TcpStream;
    type Error = io::Error;

    async fn create(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn check(&self, stream: &mut TcpStream) -> io::Result<()> {
        if peer_done(stream) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer closed the connection or sent bytes unasked",
            ));
        }
        Ok(())
    }

    fn is_broken(&self, stream: &mut TcpStream) -> bool {
        peer_done(stream)
    }
}

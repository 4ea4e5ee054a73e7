//! [`PostgresManager`]: pooled PostgreSQL clients (tokio-postgres).

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Error, NoTls, Socket};

use crate::Manager;

/// Makes [`tokio_postgres::Client`]s; a check is an empty query (one round
/// trip, no work for the server), and a client whose connection has ended
/// ([`Client::is_closed`]) counts as broken.
///
/// Each client's connection runs in a task of its own, which ends when the
/// client is dropped or the connection fails.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use seawall_pool::postgres::PostgresManager;
/// use seawall_pool::{Pool, PoolConfig};
///
/// let manager = PostgresManager::from_url("postgres://app@127.0.0.1/app")?;
/// let pool = Pool::new(manager, PoolConfig::builder().max_size(16).build()?).await?;
/// let client = pool.get().await?;
/// let row = client.query_one("SELECT 1 + 1", &[]).await?;
/// assert_eq!(row.get::<_, i32>(0), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresManager<T = NoTls> {
    config: Config,
    tls: T,
}

impl PostgresManager {
    /// Clients made from `config`, without TLS.
    pub fn new(config: Config) -> Self {
        Self { config, tls: NoTls }
    }

    /// Clients made from a URL or key-value string, without TLS.
    ///
    /// # Errors
    /// The string cannot be read as a config.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Self::new(url.parse()?))
    }
}

impl<T> PostgresManager<T> {
    /// Clients made from `config` over `tls` (a `MakeTlsConnect`, such as
    /// `postgres-native-tls` or `tokio-postgres-rustls` provide).
    pub fn with_tls(config: Config, tls: T) -> Self {
        Self { config, tls }
    }

    /// The config clients are made from.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl<T> Manager for PostgresManager<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Object = Client;
    type Error = Error;

    async fn create(&self) -> Result<Client, Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            // Its error also reaches the client, whose next call fails and
            // which then reads as closed.
            let _ = connection.await;
        });
        Ok(client)
    }

    async fn check(&self, client: &mut Client) -> Result<(), Error> {
        client.simple_query("").await.map(drop)
    }

    fn is_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}

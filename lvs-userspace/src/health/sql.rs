//! The mysql and pgsql negotiate checks, as ldirectord's `check_sql` (DBI): log in as
//! `login` with `passwd` to `database`, run `request` (a `SELECT`, its leading `/` removed),
//! and the real is up when at least one row comes back. Both speak through maintained client
//! crates (`mysql_async`, `tokio-postgres`), without TLS (ldirectord's DBI defaults).
//!
//! Bounds: the whole exchange runs under the negotiate timeout; the PostgreSQL connection
//! reads at most [`MAX_READ`] bytes in all (the socket is wrapped), and the MySQL client's
//! largest packet is set to [`MAX_READ`]; both stop at the first row.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes a check reads.
pub const MAX_READ: usize = 64 * 1024;

/// Which database server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Pgsql,
}

/// Why a sql check failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// No connection to the real.
    #[error("{dialect:?}: cannot connect to {addr}: {source}")]
    Connect {
        /// Which server.
        dialect: Dialect,
        /// The real.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The MySQL server refused the login or the query, or the exchange broke.
    #[error("mysql: {source}")]
    Mysql {
        /// The client's error.
        #[source]
        source: Box<mysql_async::Error>,
    },
    /// The PostgreSQL server refused the login or the query, or the exchange broke.
    #[error("pgsql: {source}")]
    Pgsql {
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The query returned no row.
    #[error("{dialect:?}: the query returned no row")]
    NoRow {
        /// Which server.
        dialect: Dialect,
    },
    /// No answer within the timeout.
    #[error("{dialect:?}: no answer within {timeout:?}")]
    Timeout {
        /// Which server.
        dialect: Dialect,
        /// The negotiate timeout.
        timeout: Duration,
    },
}

/// A prepared sql check of one real.
#[derive(Clone, Debug)]
pub struct SqlCheck {
    /// Which server.
    pub dialect: Dialect,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `login`.
    pub user: String,
    /// `passwd`.
    pub passwd: String,
    /// `database` (none: the server's default, the user's name for PostgreSQL).
    pub database: Option<String>,
    /// `request`: the query.
    pub query: String,
    /// The whole exchange's timeout.
    pub timeout: Duration,
    /// Where its sockets leave from (keepalived's `bindto`...).
    pub source: crate::config::model::CheckSource,
}

impl SqlCheck {
    /// Runs the check.
    pub async fn run(&self) -> Result<String, SqlError> {
        let run = async {
            match self.dialect {
                Dialect::Mysql => self.mysql().await,
                Dialect::Pgsql => self.pgsql().await,
            }
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or(Err(SqlError::Timeout {
                dialect: self.dialect,
                timeout: self.timeout,
            }))
    }

    fn query(&self) -> &str {
        self.query.trim_start_matches('/')
    }

    async fn mysql(&self) -> Result<String, SqlError> {
        use mysql_async::prelude::Queryable;
        let err = |e: mysql_async::Error| SqlError::Mysql {
            source: Box::new(e),
        };
        // Both settings given: the client asks the server for neither after the login.
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.addr.ip().to_string())
            .tcp_port(self.addr.port())
            .prefer_socket(false)
            .user(Some(self.user.clone()))
            .pass(Some(self.passwd.clone()))
            .db_name(self.database.clone())
            .max_allowed_packet(Some(MAX_READ))
            .wait_timeout(Some(60))
            .stmt_cache_size(0);
        let mut conn = mysql_async::Conn::new(opts).await.map_err(err)?;
        let row = {
            let mut result = conn.query_iter(self.query()).await.map_err(err)?;
            result.next().await.map_err(err)?
        };
        if row.is_none() {
            return Err(SqlError::NoRow {
                dialect: Dialect::Mysql,
            });
        }
        // The connection is dropped with the rest of the result unread: it is closed, not
        // drained.
        drop(conn);
        Ok("mysql: a row".to_string())
    }

    async fn pgsql(&self) -> Result<String, SqlError> {
        use futures_util::StreamExt as _;
        let err = |source| SqlError::Pgsql { source };
        let addr = self.addr;
        let tcp = super::source::tcp(addr, &self.source)
            .await
            .map_err(|source| SqlError::Connect {
                dialect: Dialect::Pgsql,
                addr,
                source,
            })?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.user)
            .password(&self.passwd)
            .application_name("lvs-health");
        if let Some(db) = &self.database {
            config.dbname(db);
        }
        let (client, connection) = config
            .connect_raw(Capped::new(tcp), tokio_postgres::NoTls)
            .await
            .map_err(err)?;
        // The connection's task ends when the client is dropped (or on the cap).
        let task = tokio::spawn(connection);
        let row = async {
            let stream = client.simple_query_raw(self.query()).await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(m) = stream.next().await {
                if let tokio_postgres::SimpleQueryMessage::Row(_) = m? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        .await;
        drop(client);
        task.abort();
        match row.map_err(err)? {
            true => Ok("pgsql: a row".to_string()),
            false => Err(SqlError::NoRow {
                dialect: Dialect::Pgsql,
            }),
        }
    }
}

/// A stream that fails its reads once [`MAX_READ`] bytes have been read.
struct Capped<S> {
    inner: S,
    read: usize,
}

impl<S> Capped<S> {
    fn new(inner: S) -> Self {
        Capped { inner, read: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read > MAX_READ {
            return Poll::Ready(Err(io::Error::other(format!(
                "more than {MAX_READ} bytes read"
            ))));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += buf.filled().len() - before;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;

//! Connection deadlines and limits; `serve.rs` holds every connection to them.

use clap::Args;

/// Deadlines and limits of every connection. The defaults are close to nginx's
/// (`client_header_timeout` 60 s, `keepalive_timeout` 75 s, `client_body_timeout` 60 s,
/// `worker_connections` 512 per worker), tighter where a machine client has no reason to be slow.
#[derive(Debug, Clone, Args)]
pub struct ConnectionConfig {
    /// Seconds a client has to send a request's headers, from its first byte; slower
    /// connections (slowloris) are closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,

    /// Seconds an idle keep-alive connection is kept open between requests.
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT", default_value_t = 60)]
    pub keep_alive_timeout: u64,

    /// Seconds a request has, body included, from its headers to its answer; later, 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,

    /// Connections served at once per listener; more wait in the kernel's accept queue.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds the listener keeps accepting and serving after SIGTERM/SIGINT while
    /// `/health/ready` answers 503, so that load balancers take the server out of rotation
    /// before it stops accepting: more than a balancer's readiness interval times its failure
    /// threshold, or Kubernetes' endpoint propagation (a few seconds). Then in-flight requests
    /// get `SHUTDOWN_TIMEOUT`.
    #[arg(long, env = "DRAIN_DELAY", default_value_t = 5)]
    pub drain_delay: u64,
}

//! A fleet of simulated replicas in this process: their listeners, connections and lifecycle.
//!
//! Owns sockets. Each replica has one accept loop; each connection is served by hyper's
//! auto (HTTP/1.1 + h2c prior-knowledge) builder on its own task.
//!
//! [`SimFleet::kill`] behaves like a crashed pod and takes effect before it returns: it shuts the
//! listening socket down (new connections are refused, queued ones reset) and shuts down every
//! open connection's socket (through a duplicate descriptor kept per connection), then signals
//! the accept loop, the connection tasks and the HTTP/2 stream tasks (through the executor hyper
//! spawns them with) to drop everything, which frees the engine's slots. Dropping the fleet stops
//! every replica the same way.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use socket2::{SockRef, Socket};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::kv_cache::KvEvent;
use crate::server::Replica;

/// Simulated model servers running on the current tokio runtime. Dropping it stops them all.
pub struct SimFleet {
    replicas: Vec<ReplicaHandle>,
}

struct ReplicaHandle {
    addr: SocketAddr,
    state: Arc<Replica>,
    kill: watch::Sender<bool>,
    /// A duplicate of the listening socket, to shut it down from outside the accept loop.
    listener: Socket,
    connections: Arc<Connections>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

/// Duplicates of a replica's open connection sockets (bounded by its open connections).
#[derive(Default)]
struct Connections {
    inner: Mutex<ConnectionSet>,
}

#[derive(Default)]
struct ConnectionSet {
    killed: bool,
    next_id: u64,
    sockets: HashMap<u64, Socket>,
}

/// Removes a connection from its set when the connection ends.
struct ConnectionEntry {
    connections: Arc<Connections>,
    id: u64,
}

impl Connections {
    /// Tracks `stream`; `None` if the replica is already killed (the connection must be dropped).
    fn register(self: &Arc<Self>, stream: &TcpStream) -> Option<ConnectionEntry> {
        let dup = SockRef::from(stream).try_clone().ok();
        let mut set = self.inner.lock();
        if set.killed {
            return None;
        }
        let id = set.next_id;
        set.next_id += 1;
        if let Some(dup) = dup {
            set.sockets.insert(id, dup);
        }
        Some(ConnectionEntry {
            connections: Arc::clone(self),
            id,
        })
    }

    fn kill_all(&self) {
        let sockets = {
            let mut set = self.inner.lock();
            set.killed = true;
            std::mem::take(&mut set.sockets)
        };
        for socket in sockets.values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for ConnectionEntry {
    fn drop(&mut self) {
        self.connections.inner.lock().sockets.remove(&self.id);
    }
}

/// Spawns hyper's background tasks (HTTP/2 streams) so that they die with their replica.
#[derive(Clone)]
struct KillableExecutor {
    killed: watch::Receiver<bool>,
}

impl<F> hyper::rt::Executor<F> for KillableExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut killed = self.killed.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = killed_signal(&mut killed) => {}
            }
        });
    }
}

impl SimFleet {
    /// Starts `replicas` servers bound to `bind` on consecutive ports from `base_port`
    /// (`base_port` 0 = each gets an OS-chosen port), all in this process, on the current tokio
    /// runtime.
    pub async fn start(
        config: SimConfig,
        bind: IpAddr,
        base_port: u16,
        replicas: usize,
    ) -> std::io::Result<SimFleet> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let config = Arc::new(config);
        let mut handles = Vec::with_capacity(replicas);
        for index in 0..replicas {
            let port = if base_port == 0 {
                0
            } else {
                u16::try_from(usize::from(base_port) + index).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "replica {index} would listen beyond port 65535 (base port {base_port})"
                        ),
                    )
                })?
            };
            let listener = TcpListener::bind(SocketAddr::new(bind, port)).await?;
            let addr = listener.local_addr()?;
            let listener_dup = SockRef::from(&listener).try_clone()?;
            let state = Arc::new(Replica::new(Arc::clone(&config), index, addr.port()));
            let (kill, killed) = watch::channel(false);
            if let Some(kv) = state.kv.as_ref() {
                for endpoint in &config.zmq_endpoint {
                    let publisher = crate::kv_publisher::run(
                        endpoint.clone(),
                        addr.to_string(),
                        state.primary_model().to_string(),
                        config.event_batch_size,
                        kv.subscribe(),
                    );
                    let mut killed = killed.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = publisher => {}
                            _ = killed_signal(&mut killed) => {}
                        }
                    });
                }
            }
            let connections = Arc::new(Connections::default());
            let task = tokio::spawn(accept_loop(
                listener,
                Arc::clone(&state),
                Arc::clone(&connections),
                killed,
            ));
            tracing::debug!(replica = index, %addr, model = state.primary_model(), "sim replica listening");
            handles.push(ReplicaHandle {
                addr,
                state,
                kill,
                listener: listener_dup,
                connections,
                accept_task: Mutex::new(Some(task)),
            });
        }
        Ok(SimFleet { replicas: handles })
    }

    /// The listening address of every replica, in index order (killed ones included).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.addr).collect()
    }

    /// Stops one replica abruptly, like a crashed pod: when this returns, its port refuses
    /// connections and its open connections are cut (in-flight responses end without their
    /// final bytes). An unknown index is ignored.
    pub fn kill(&self, index: usize) {
        let Some(replica) = self.replicas.get(index) else {
            tracing::warn!(index, "SimFleet::kill: no such replica");
            return;
        };
        replica.stop();
    }

    /// Stops every replica and waits until their accept loops have ended.
    pub async fn shutdown(self) {
        for replica in &self.replicas {
            replica.stop();
        }
        for replica in &self.replicas {
            let task = replica.accept_task.lock().take();
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    /// Prefix-cache events of one replica (`None`: no such replica, or `--enable-kvcache false`).
    pub fn kv_events(&self, index: usize) -> Option<broadcast::Receiver<KvEvent>> {
        self.replicas
            .get(index)?
            .state
            .kv
            .as_ref()
            .map(|kv| kv.subscribe())
    }

    /// The served model name replicas label their metrics with.
    pub fn model_name(&self) -> Option<&str> {
        self.replicas.first().map(|r| r.state.primary_model())
    }
}

impl ReplicaHandle {
    fn stop(&self) {
        // Linux stops listening on SHUT_RD: new SYNs are refused, the accept queue is reset.
        let _ = self.listener.shutdown(Shutdown::Read);
        self.connections.kill_all();
        // Then let the tasks go, dropping in-flight requests (which frees their slots).
        self.kill.send_replace(true);
        if let Some(task) = self.accept_task.lock().as_ref() {
            task.abort();
        }
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        for replica in &self.replicas {
            replica.stop();
        }
    }
}

/// Resolves once the replica is killed (or its fleet dropped).
async fn killed_signal(killed: &mut watch::Receiver<bool>) {
    // The borrowed value is dropped here, before any other await (it is not Send).
    let _ = killed.wait_for(|&k| k).await;
}

async fn accept_loop(
    listener: TcpListener,
    replica: Arc<Replica>,
    connections: Arc<Connections>,
    mut killed: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(KillableExecutor {
        killed: killed.clone(),
    });
    // No hyper timer: a header-read timeout would arm a timer for every request, and the
    // zero-latency path must not touch the timer wheel (clients of a simulator are trusted).
    builder.http1().keep_alive(true);
    builder.http2().max_concurrent_streams(1024);
    loop {
        let stream = tokio::select! {
            biased;
            _ = killed_signal(&mut killed) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, replica = replica.index, "sim accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some(entry) = connections.register(&stream) else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let replica = Arc::clone(&replica);
        let mut conn_killed = killed.clone();
        tokio::spawn(async move {
            let _entry = entry;
            let service = service_fn(move |req| {
                let replica = Arc::clone(&replica);
                async move { Ok::<_, std::convert::Infallible>(replica.handle(req).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection mid-request: a crash, not a drain.
                _ = killed_signal(&mut conn_killed) => {}
            }
        });
    }
}

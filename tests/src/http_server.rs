//! Real HTTP servers on loopback for what the tests stand in for (a sink's endpoint, a
//! registry that answers without end): an axum router served by hyper on a runtime of its
//! own, so that a synchronous test drives it.

use std::time::Duration;

pub struct LoopbackServer {
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LoopbackServer {
    /// Serves `router` on `127.0.0.1:port` (0: any free port) until dropped.
    pub fn start(port: u16, router: axum::Router) -> Self {
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                let _ = bound_tx.send(listener.local_addr().map(|a| a.port()));
                // Requests under way when the server is dropped are still answered.
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
            });
        });
        let port = bound_rx
            .recv()
            .expect("server thread")
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        Self {
            port,
            shutdown: Some(shutdown),
        }
    }
}

impl Drop for LoopbackServer {
    /// Closes the port: connections are refused from the moment this returns.
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let closed = crate::wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
        assert!(closed.is_some(), "port {} still open", self.port);
    }
}

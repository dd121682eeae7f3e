//! An axum service that ships its logs to Graylog with one `.with(...)`.
//!
//! ```text
//! GELF_ENDPOINT=tcp://127.0.0.1:12201 cargo run -p examples --example axum_service
//! curl http://127.0.0.1:3000/greet/Ada
//! ```
//!
//! Graylog receives `greeted` with `_request_id`, `_route`, `_name_chars` (an
//! integer) and `_service`; a name over 32 characters gives a 400 and a WARN
//! event classified by the attribution rules (`_component`, `_error_category`,
//! `_solution`). Ctrl-C stops the server; dropping the guard flushes.

use std::time::Duration;

use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint =
        std::env::var("GELF_ENDPOINT").unwrap_or_else(|_| "tcp://127.0.0.1:12201".to_string());
    let (gelf, guard) = gelf_tracing::GelfLayer::builder()
        .endpoint(&endpoint)?
        .static_field("service", "greeter")
        .attribution(examples::attribution_rules()?)
        .build()?;
    tracing_subscriber::registry()
        .with(gelf)
        .with(tracing_subscriber::fmt::layer())
        .init();

    let addr = std::env::var("GREETER_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "greeter listening");
    axum::serve(listener, examples::router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    tracing::info!("greeter stopped");
    // The guard would flush on drop; flushing explicitly reports a failure.
    if let Err(e) = guard.flush(Duration::from_secs(5)) {
        eprintln!("GELF flush: {e}");
    }
    Ok(())
}

//! The RabbitMQ every test talks to. A leaf module: both the in-process
//! `TestApp` and the child-process helpers connect here, so neither has to
//! import the other for it.

use lapin::{Channel, Connection, ConnectionProperties};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A connection of the test's own and a channel on it, for declaring,
/// inspecting or deleting broker objects behind the daemon's back. Close the
/// connection when done (`conn.close(200, "done".into())`).
pub async fn open_channel() -> (Connection, Channel) {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("connecting to RabbitMQ (is it running on 127.0.0.1:5672?)");
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}

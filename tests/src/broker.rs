//! The RabbitMQ every test talks to. A leaf module: both the in-process
//! `TestApp` and the child-process helpers connect here, so neither has to
//! import the other for it.

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub(crate) mod secrets;
pub(crate) mod users;

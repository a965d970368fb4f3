//! A webhook's `ordering` (SPEC §13): whether its deliveries may overlap.

use std::fmt;

/// How a webhook's deliveries are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DeliveryOrder {
    /// Attempted as they come, several at once; no order between events.
    #[default]
    None,
    /// One at a time, in the order the events were consumed: the next waits
    /// until the one before it has succeeded or failed for good.
    Fifo,
}

/// An `ordering` that is neither `none` nor `fifo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`ordering` must be \"none\" or \"fifo\", not {0:?}")]
pub struct UnknownOrder(pub String);

impl DeliveryOrder {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOrder::None => "none",
            DeliveryOrder::Fifo => "fifo",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, UnknownOrder> {
        match raw {
            "none" => Ok(DeliveryOrder::None),
            "fifo" => Ok(DeliveryOrder::Fifo),
            other => Err(UnknownOrder(other.to_owned())),
        }
    }
}

impl TryFrom<String> for DeliveryOrder {
    type Error = UnknownOrder;

    fn try_from(raw: String) -> Result<Self, UnknownOrder> {
        DeliveryOrder::parse(&raw)
    }
}

impl fmt::Display for DeliveryOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_reads_back_as_written_and_nothing_else_is_one() {
        for order in [DeliveryOrder::None, DeliveryOrder::Fifo] {
            assert_eq!(DeliveryOrder::parse(order.as_str()), Ok(order));
        }
        assert_eq!(DeliveryOrder::default(), DeliveryOrder::None);
        for wrong in ["", "FIFO", "lifo", " fifo"] {
            let error = DeliveryOrder::parse(wrong).unwrap_err();
            assert!(error.to_string().contains("`ordering`"), "{error}");
        }
    }
}

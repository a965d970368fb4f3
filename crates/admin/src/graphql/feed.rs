//! A subscriber's end of a live feed: a bounded buffer the feed fills
//! without ever waiting (a full buffer cuts the subscriber off), and the
//! membership that takes the subscriber out of the feed when dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

pub(crate) struct Feed<T> {
    items: mpsc::Receiver<T>,
    _membership: Box<dyn Send + Sync>,
}

impl<T> Feed<T> {
    pub(crate) fn new(items: mpsc::Receiver<T>, membership: impl Send + Sync + 'static) -> Self {
        Feed {
            items,
            _membership: Box::new(membership),
        }
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.items.poll_recv(cx)
    }
}

//! The body of an upstream's HTTP response, whichever client carried it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::plain::DrivenBody;

/// A response body from hyper-util's client (`https://`) or from the plain pool (`http://`),
/// where reading it also drives its connection.
pub(crate) struct ResponseBody(Repr);

enum Repr {
    Pooled(Incoming),
    Driven(DrivenBody),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Pooled(_) => f.write_str("ResponseBody(pooled)"),
            Repr::Driven(_) => f.write_str("ResponseBody(driven)"),
        }
    }
}

impl From<Incoming> for ResponseBody {
    fn from(body: Incoming) -> Self {
        ResponseBody(Repr::Pooled(body))
    }
}

impl From<DrivenBody> for ResponseBody {
    fn from(body: DrivenBody) -> Self {
        ResponseBody(Repr::Driven(body))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().0 {
            Repr::Pooled(b) => Pin::new(b).poll_frame(cx),
            Repr::Driven(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Repr::Pooled(b) => b.is_end_stream(),
            Repr::Driven(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Repr::Pooled(b) => b.size_hint(),
            Repr::Driven(b) => b.size_hint(),
        }
    }
}

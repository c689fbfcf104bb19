//! [`InProcess`]: the `ocean-client` [`Client`] of a master's own process.
//! Frameworks hosted on the leader (and tests) talk to the master through
//! the very gRPC handlers remote clients reach, called as functions: the
//! same validation, the same errors, no socket.

use futures::stream::BoxStream;
use futures::StreamExt;
use ocean_client::api::ocean_api_server::OceanApi;
use ocean_client::api::*;
use ocean_client::{Client, Error, Result};
use tonic::Request;

use super::grpc_api::Api;
use crate::master::Master;

/// A client of the master it was made from.
#[derive(Debug, Clone)]
pub struct InProcess(Api);

impl InProcess {
    /// The in-process client of `master`.
    pub fn new(master: Master) -> Self {
        InProcess(Api(master))
    }
}

/// The unary calls, each the same few lines; the streaming ones follow
/// by hand. `async_trait` must see the expanded methods, so the macro
/// writes the whole impl.
macro_rules! client_impl {
    ($($name:ident($req:ty) -> $resp:ty;)* ; $($rest:item)*) => {
        #[async_trait::async_trait]
        impl Client for InProcess {
            $(
                async fn $name(&self, req: $req) -> Result<$resp> {
                OceanApi::$name(&self.0, Request::new(req))
                    .await
                    .map(|r| r.into_inner())
                    .map_err(Error::from_status)
                }
            )*
            $($rest)*
        }
    };
}

ocean_client::with_unary_calls! { client_impl {
    async fn watch(&self, req: WatchRequest) -> Result<BoxStream<'static, Result<Event>>> {
        let stream = OceanApi::watch(&self.0, Request::new(req))
            .await
            .map_err(Error::from_status)?
            .into_inner();
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }

    async fn task_logs(&self, req: TaskLogsRequest) -> Result<BoxStream<'static, Result<LogChunk>>> {
        let stream = OceanApi::task_logs(&self.0, Request::new(req))
            .await
            .map_err(Error::from_status)?
            .into_inner();
        Ok(stream.map(|r| r.map_err(Error::from_status)).boxed())
    }
} }

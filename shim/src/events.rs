//! Events to containerd, published in order from one thread so that a slow
//! containerd never blocks a request or the reaper. Events are encoded with
//! their type URL written out: the protobuf reflection the crate's publisher
//! uses builds every descriptor and costs the shim resident memory.

use std::sync::mpsc::{channel, Sender};

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::{Client, EventsClient};

use crate::error::{Error, Result};

/// An event message and the name containerd's type registry knows it by.
pub trait Event: Message {
    const TYPE_URL: &'static str;
}

macro_rules! events {
    ($($t:ident),*) => {
        $(impl Event for $t {
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($t));
        })*
    };
}
events!(
    TaskCreate,
    TaskStart,
    TaskExit,
    TaskOOM,
    TaskExecAdded,
    TaskExecStarted,
    TaskPaused,
    TaskResumed,
    TaskDelete
);

enum Msg {
    Publish(&'static str, Any),
    /// Acknowledged once everything queued before it has been sent.
    Flush(Sender<()>),
}

#[derive(Clone)]
pub struct Events(Sender<Msg>);

impl Events {
    /// Connects to containerd's ttrpc socket and starts the publishing thread.
    pub fn start(ttrpc_address: &str, namespace: String) -> Result<Self> {
        let fd = containerd_shim::util::connect(ttrpc_address)?;
        let client = EventsClient::new(
            Client::new(fd).map_err(|e| Error::Other(format!("events client: {e}")))?,
        );
        let (tx, rx) = channel::<Msg>();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for msg in rx {
                    let (topic, event) = match msg {
                        Msg::Publish(topic, event) => (topic, event),
                        Msg::Flush(done) => {
                            let _ = done.send(());
                            continue;
                        }
                    };
                    let req = ForwardRequest {
                        envelope: MessageField::some(Envelope {
                            timestamp: MessageField::some(crate::util::now()),
                            namespace: namespace.clone(),
                            topic: topic.to_string(),
                            event: MessageField::some(event),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    if let Err(e) = client.forward(Context::default(), &req) {
                        tracing::warn!("publish {topic}: {e}");
                    }
                }
            })
            .map_err(Error::io("spawn events thread"))?;
        Ok(Events(tx))
    }

    /// Waits (at most `timeout`) until the events queued so far are sent:
    /// the shim must not exit with TaskDelete still in its queue.
    pub fn flush(&self, timeout: std::time::Duration) {
        let (tx, rx) = channel();
        if self.0.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }

    pub fn send<E: Event>(&self, topic: &'static str, ev: E) {
        match ev.write_to_bytes() {
            Ok(value) => {
                let any = Any {
                    type_url: E::TYPE_URL.to_string(),
                    value,
                    ..Default::default()
                };
                let _ = self.0.send(Msg::Publish(topic, any));
            }
            Err(e) => tracing::error!("encode {}: {e}", E::TYPE_URL),
        }
    }
}

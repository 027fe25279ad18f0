//! Events to containerd, published in order from one thread so that a slow
//! containerd never blocks a request or the reaper.

use std::sync::mpsc::{channel, Sender};

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;

type Event = (&'static str, Box<dyn MessageDyn + Send>);

#[derive(Clone)]
pub struct Events(Sender<Event>);

impl Events {
    pub fn start(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = channel::<Event>();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                for (topic, ev) in rx {
                    if let Err(e) = publisher.publish(Context::default(), topic, &namespace, ev) {
                        tracing::warn!("publish {topic}: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("start event publisher: {e}");
        }
        Events(tx)
    }

    pub fn send(&self, topic: &'static str, ev: impl MessageDyn + Send) {
        let _ = self.0.send((topic, Box::new(ev)));
    }
}

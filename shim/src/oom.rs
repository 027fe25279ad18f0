//! OOM: placeholder.
use crate::container::Container;
use crate::events::Events;
pub fn watch(_c: &Container, _e: &Events) {}

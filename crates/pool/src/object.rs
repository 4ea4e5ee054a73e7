//! A checked-out object: it goes back to the pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use seawall_core::{Clock, CoarseClock};

use crate::manager::Manager;
use crate::pool::{Entry, Inner};

/// An object checked out with [`Pool::get`](crate::Pool::get): use it
/// through `Deref`; dropping it returns it to the pool (or discards it, if
/// the manager finds it broken, it is past its lifetime, or the thread is
/// panicking). [`take`](Self::take) keeps it for good.
pub struct Object<'a, M: Manager, C: Clock = CoarseClock> {
    inner: &'a Inner<M, C>,
    slot: u32,
    entry: Option<Entry<M::Object>>,
}

/// An object checked out with [`Pool::get_owned`](crate::Pool::get_owned):
/// as [`Object`], but it holds the pool, so it is `'static`.
pub struct OwnedObject<M: Manager, C: Clock = CoarseClock> {
    inner: Arc<Inner<M, C>>,
    slot: u32,
    entry: Option<Entry<M::Object>>,
}

macro_rules! guard {
    ($name:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? M: Manager, C: Clock> $name<$($lt,)? M, C> {
            /// Takes the object out of the pool for good: the pool makes
            /// room for another.
            // The entry is there from checkout until drop or `take`.
            #[allow(clippy::missing_panics_doc)]
            pub fn take(mut self) -> M::Object {
                let entry = self.entry.take().expect("an object until it is dropped");
                self.inner.detach(self.slot);
                entry.object
            }
        }

        impl<$($lt,)? M: Manager, C: Clock> Deref for $name<$($lt,)? M, C> {
            type Target = M::Object;

            fn deref(&self) -> &M::Object {
                &self.entry.as_ref().expect("an object until it is dropped").object
            }
        }

        impl<$($lt,)? M: Manager, C: Clock> DerefMut for $name<$($lt,)? M, C> {
            fn deref_mut(&mut self) -> &mut M::Object {
                &mut self.entry.as_mut().expect("an object until it is dropped").object
            }
        }

        impl<$($lt,)? M: Manager, C: Clock> Drop for $name<$($lt,)? M, C> {
            fn drop(&mut self) {
                if let Some(entry) = self.entry.take() {
                    self.inner.give_back(self.slot, entry);
                }
            }
        }

        impl<$($lt,)? M: Manager, C: Clock> fmt::Debug for $name<$($lt,)? M, C>
        where
            M::Object: fmt::Debug,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("object", &**self)
                    .finish_non_exhaustive()
            }
        }
    };
}

guard!(Object<'a>);
guard!(OwnedObject);

impl<'a, M: Manager, C: Clock> Object<'a, M, C> {
    pub(crate) fn new(inner: &'a Inner<M, C>, slot: u32, entry: Entry<M::Object>) -> Self {
        Self {
            inner,
            slot,
            entry: Some(entry),
        }
    }
}

impl<M: Manager, C: Clock> OwnedObject<M, C> {
    pub(crate) fn new(inner: Arc<Inner<M, C>>, slot: u32, entry: Entry<M::Object>) -> Self {
        Self {
            inner,
            slot,
            entry: Some(entry),
        }
    }
}

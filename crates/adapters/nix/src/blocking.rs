//! The store is blocking (redb commits fsync): async code reaches it through [`on_store`].

use flakeboot_store::Store;

/// Run `f` on the store on tokio's blocking pool. `Err` only when the task could not finish
/// (the runtime is shutting down).
pub(crate) async fn on_store<T, E>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>, tokio::task::JoinError>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await
}

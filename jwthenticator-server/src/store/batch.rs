//! Opportunistic batching of one kind of database statement.
//!
//! Under load, most of what an `/authenticate` costs PostgreSQL is not the row it writes but the
//! statement around it: a round trip, a transaction, a commit that waits for the WAL flush, and
//! the client's and the server's wake-ups. A [`Batcher`] lets the requests that arrive while
//! earlier statements are running share one statement (one `INSERT ... SELECT FROM UNNEST`, one
//! `SELECT ... WHERE key_hash = ANY($1)`): nothing waits for a batch to fill, a request that finds
//! the database idle is sent at once, and each caller gets its answer only after its statement
//! has committed, exactly as if it had run alone.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::StoreError;

/// Requests waiting for a slot; callers beyond it wait for room (back-pressure, not loss).
const QUEUE: usize = 4096;

type Reply<Out> = oneshot::Sender<Result<Out, StoreError>>;

/// Runs statements for many callers at once. Cloning shares the batcher.
pub(crate) struct Batcher<In, Out> {
    queue: mpsc::Sender<(In, Reply<Out>)>,
}

impl<In, Out> Clone for Batcher<In, Out> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<In, Out> std::fmt::Debug for Batcher<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("waiting", &(QUEUE - self.queue.capacity()))
            .finish()
    }
}

impl<In, Out> Batcher<In, Out>
where
    In: Send + 'static,
    Out: Send + 'static,
{
    /// A batcher that runs at most `in_flight` batches at a time, each of at most `max_batch`
    /// inputs. `run` answers a batch with one output per input, in order. Each batch's size is
    /// recorded in `jwthenticator_db_batch_size{statement}`. Must be called inside a tokio
    /// runtime; the task it starts ends when the last clone is dropped.
    pub(crate) fn new<F, Fut>(
        statement: &'static str,
        max_batch: usize,
        in_flight: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Out>, StoreError>> + Send + 'static,
    {
        let (queue, mut receiver) = mpsc::channel::<(In, Reply<Out>)>(QUEUE);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        let run = Arc::new(run);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                // Waiting for a slot is what lets a batch grow: the requests arriving meanwhile
                // join it.
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                metrics::histogram!("jwthenticator_db_batch_size", "statement" => statement)
                    .record(f64::from(u32::try_from(batch.len()).unwrap_or(u32::MAX)));
                let run = Arc::clone(&run);
                tokio::spawn(async move {
                    let (inputs, replies): (Vec<In>, Vec<Reply<Out>>) = batch.into_iter().unzip();
                    let expected = inputs.len();
                    match run(inputs).await {
                        Ok(outputs) if outputs.len() == expected => {
                            for (reply, output) in replies.into_iter().zip(outputs) {
                                // A caller that went away (its request was cancelled) is fine.
                                let _ = reply.send(Ok(output));
                            }
                        }
                        Ok(outputs) => {
                            let error = StoreError::Database(sqlx::Error::Protocol(format!(
                                "a batch of {expected} got {} answers",
                                outputs.len()
                            )));
                            answer_all_with(replies, &error);
                        }
                        Err(error) => answer_all_with(replies, &error),
                    }
                    drop(slot);
                });
            }
        });
        Self { queue }
    }

    /// Runs `input` in the next batch and returns its output once the batch has committed.
    pub(crate) async fn submit(&self, input: In) -> Result<Out, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.queue
            .send((input, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// Gives every caller of a failed batch the error, as the same kind (unavailable or not).
fn answer_all_with<Out>(replies: Vec<Reply<Out>>, error: &StoreError) {
    for reply in replies {
        let _ = reply.send(Err(error.duplicate()));
    }
}

impl StoreError {
    /// A copy of this error for another caller (`sqlx::Error` cannot be cloned): the same
    /// variant, so an unavailable database still answers 503, and the same message.
    fn duplicate(&self) -> Self {
        match self {
            Self::Unavailable(error) => {
                Self::Unavailable(sqlx::Error::Io(std::io::Error::other(error.to_string())))
            }
            other => Self::Database(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_batches_and_each_gets_its_own_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&batches);
        let batcher = Batcher::new("test", 64, 1, move |inputs: Vec<u32>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(inputs.into_iter().map(|n| n * 2).collect())
            }
        });
        let calls: Vec<_> = (0..200u32)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (n, batcher.submit(n).await) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.expect("joins");
            assert_eq!(answer.expect("answered"), n * 2);
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (4..=20).contains(&batches),
            "200 calls, at most 64 per batch, one batch at a time: {batches} batches"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_with_the_same_kind_of_error() {
        let batcher = Batcher::new("test", 8, 2, |_: Vec<u32>| async {
            Err::<Vec<()>, _>(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
        });
        let answers = futures_util::future::join_all((0..5).map(|n| batcher.submit(n))).await;
        for answer in answers {
            assert!(
                matches!(answer, Err(StoreError::Unavailable(_))),
                "{answer:?}"
            );
        }
        let batcher = Batcher::new("test", 8, 2, |_: Vec<u32>| async { Ok(vec![(); 0]) });
        assert!(matches!(
            batcher.submit(1).await,
            Err(StoreError::Database(_))
        ));
    }
}

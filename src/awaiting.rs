//! `Awaiting`: the futures an actor waits on while it goes on handling messages, each polled
//! only when it can make progress.
//!
//! actix polls every future spawned into a context (`ctx.spawn`, a `ResponseActFuture`) each
//! time the context wakes. A hub actor with one such future per request waiting for a group
//! commit (the presence agent, the registrar, the subscribe router) would pay, for every message it
//! handles, for every request still in flight: the more requests in flight, the dearer each
//! one, and a slow database would make the whole server slower. `Awaiting` keeps an actor's waiting
//! futures in one `FuturesUnordered`, driven by one context item (`Drive`, spawned with the
//! first of them), which polls only the futures that were woken. The dispatcher's `Answers`
//! does the same for the requests it hands over.
//!
//! A handler answers with a `Deferred`: a value now, a future and what to do with its output,
//! on the actor, once it completes (which may be to wait again), or the asker's channel handed
//! over to another actor that answers it (`hand_over`: the presence agent passes a PUBLISH's to its
//! presentity, so no hub actor is woken between the commit and the response).
//!
//! Owns: one actor's waiting futures and their continuations. Must not: know what they wait
//! for.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};

/// What runs on the actor once a waited-for future completes.
type Resume<A> = Box<dyn FnOnce(&mut A, &mut Context<A>)>;

/// A waiting future, completing with what to run on the actor.
type Waits<A> = Pin<Box<dyn Future<Output = Resume<A>>>>;

/// A continuation giving the next step of a `Deferred`.
type Then<A, R> = Box<dyn FnOnce(&mut A, &mut Context<A>) -> Deferred<A, R>>;

/// The waiting futures of one actor, shared by the actor (`Awaiting`), the answers it hands
/// out (`Deferred`) and the context item that polls them (`Drive`).
struct Waiting<A: Actor<Context = Context<A>>> {
    futures: RefCell<FuturesUnordered<Waits<A>>>,
    /// `Drive` has been spawned into the actor's context.
    driven: Cell<bool>,
}

/// The futures an actor waits on. Held by the actor; `then` and `and_then` make its answers.
pub struct Awaiting<A: Actor<Context = Context<A>>> {
    waiting: Rc<Waiting<A>>,
}

impl<A: Actor<Context = Context<A>>> Default for Awaiting<A> {
    fn default() -> Self {
        Self {
            waiting: Rc::new(Waiting {
                futures: RefCell::new(FuturesUnordered::new()),
                driven: Cell::new(false),
            }),
        }
    }
}

impl<A: Actor<Context = Context<A>>> Awaiting<A> {
    /// An answer that is `then(output, actor, context)` once `future` completes.
    pub fn then<F, R>(
        &self,
        future: F,
        then: impl FnOnce(F::Output, &mut A, &mut Context<A>) -> R + 'static,
    ) -> Deferred<A, R>
    where
        F: Future + 'static,
        R: 'static,
    {
        self.and_then(future, move |out, act, ctx| {
            Deferred::now(then(out, act, ctx))
        })
    }

    /// An answer given by `then(output, actor, context)` once `future` completes: a value, or
    /// a further wait.
    pub fn and_then<F, R>(
        &self,
        future: F,
        then: impl FnOnce(F::Output, &mut A, &mut Context<A>) -> Deferred<A, R> + 'static,
    ) -> Deferred<A, R>
    where
        F: Future + 'static,
        R: 'static,
    {
        Deferred(Step::Later {
            waiting: Rc::clone(&self.waiting),
            future: Box::pin(async move {
                let out = future.await;
                Box::new(move |act: &mut A, ctx: &mut Context<A>| then(out, act, ctx)) as Then<A, R>
            }),
        })
    }

    /// How many futures are waiting.
    pub fn len(&self) -> usize {
        self.waiting.futures.borrow().len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A handler's answer: now (`Deferred::now`), or once a future has completed (made by
/// `Awaiting`).
pub struct Deferred<A: Actor<Context = Context<A>>, R>(Step<A, R>);

enum Step<A: Actor<Context = Context<A>>, R> {
    /// Answered at once.
    Now(R),
    /// Answered by someone else: the asker's channel is handed to them, and this actor is
    /// not woken again for the answer.
    HandOver(Box<dyn FnOnce(Option<OneshotSender<R>>)>),
    /// Answered by the continuation `future` gives, run on the actor.
    Later {
        /// Where the future waits.
        waiting: Rc<Waiting<A>>,
        /// Completes with the continuation.
        future: Pin<Box<dyn Future<Output = Then<A, R>>>>,
    },
}

impl<A: Actor<Context = Context<A>>, R: 'static> Deferred<A, R> {
    /// The answer `r`, at once.
    pub fn now(r: R) -> Self {
        Deferred(Step::Now(r))
    }

    /// An answer another actor gives: `hand_over` is given the asker's channel (`None` when
    /// the asker does not wait for an answer) and passes it on. If the channel is dropped
    /// unanswered, the asker sees its request fail, as if this actor had stopped.
    pub fn hand_over(hand_over: impl FnOnce(Option<OneshotSender<R>>) + 'static) -> Self {
        Deferred(Step::HandOver(Box::new(hand_over)))
    }

    /// Sends the answer to `to` now, or once its wait (and any further wait) is over.
    fn settle(self, ctx: &mut Context<A>, to: Option<OneshotSender<R>>) {
        match self.0 {
            Step::HandOver(hand_over) => hand_over(to),
            Step::Now(r) => {
                if let Some(to) = to {
                    // The asker may have given up waiting: nothing to do then.
                    let _ = to.send(r);
                }
            }
            Step::Later { waiting, future } => {
                if !waiting.driven.replace(true) {
                    ctx.spawn(Drive {
                        waiting: Rc::clone(&waiting),
                    });
                }
                // Polled when the context polls `Drive`: right after the message being
                // handled, or in `Drive`'s loop when a continuation waits again.
                waiting.futures.borrow_mut().push(Box::pin(async move {
                    let then = future.await;
                    Box::new(move |act: &mut A, ctx: &mut Context<A>| {
                        then(act, ctx).settle(ctx, to)
                    }) as Resume<A>
                }));
            }
        }
    }
}

impl<A, M> MessageResponse<A, M> for Deferred<A, M::Result>
where
    A: Actor<Context = Context<A>>,
    M: Message,
    M::Result: 'static,
{
    fn handle(self, ctx: &mut Context<A>, tx: Option<OneshotSender<M::Result>>) {
        self.settle(ctx, tx);
    }
}

/// The context item that polls an actor's waiting futures and runs their continuations; lives
/// as long as the actor.
struct Drive<A: Actor<Context = Context<A>>> {
    waiting: Rc<Waiting<A>>,
}

impl<A: Actor<Context = Context<A>>> ActorFuture<A> for Drive<A> {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut A,
        ctx: &mut Context<A>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        loop {
            // The borrow ends with this statement: a continuation may wait again.
            let next = self.waiting.futures.borrow_mut().poll_next_unpin(task);
            match next {
                Poll::Ready(Some(resume)) => resume(act, ctx),
                // Empty (`None`): a future added later is polled when the context polls this
                // item again, right after the message that added it.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Answers `Ask(n)` with `n + 1` once its gate opens, counting on the actor.
    #[derive(Default)]
    struct Asked {
        awaiting: Awaiting<Asked>,
        answered: u32,
    }

    impl Actor for Asked {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Ask(u32, tokio::sync::oneshot::Receiver<()>);

    impl Handler<Ask> for Asked {
        type Result = Deferred<Self, u32>;

        fn handle(&mut self, msg: Ask, _ctx: &mut Context<Self>) -> Self::Result {
            let n = msg.0;
            if n == 0 {
                return Deferred::now(0);
            }
            self.awaiting.and_then(msg.1, move |_, act, _| {
                act.answered += 1;
                // Odd numbers wait once more, on a timer, before answering.
                if n % 2 == 1 {
                    act.awaiting.then(
                        tokio::time::sleep(Duration::from_millis(1)),
                        move |_, act, _| {
                            act.answered += 1;
                            n + 1
                        },
                    )
                } else {
                    Deferred::now(n + 1)
                }
            })
        }
    }

    #[derive(Message)]
    #[rtype(result = "(u32, usize)")]
    struct Count;

    impl Handler<Count> for Asked {
        type Result = MessageResult<Count>;

        fn handle(&mut self, _: Count, _ctx: &mut Context<Self>) -> Self::Result {
            MessageResult((self.answered, self.awaiting.len()))
        }
    }

    #[actix_rt::test]
    async fn answers_come_when_their_futures_complete_in_any_order_and_chain() {
        let addr = Asked::default().start();
        let mut gates = Vec::new();
        let mut asks = Vec::new();
        for n in 1..=6 {
            let (open, gate) = tokio::sync::oneshot::channel();
            gates.push(open);
            asks.push(addr.send(Ask(n, gate)));
        }
        assert_eq!(
            addr.send(Ask(0, tokio::sync::oneshot::channel().1))
                .await
                .unwrap(),
            0
        );
        assert_eq!(addr.send(Count).await.unwrap(), (0, 6));
        // Opened last to first: each answer still goes to its own asker.
        for open in gates.into_iter().rev() {
            open.send(()).unwrap();
        }
        let mut answers = Vec::new();
        for ask in asks {
            answers.push(ask.await.unwrap());
        }
        assert_eq!(answers, vec![2, 3, 4, 5, 6, 7]);
        // Six continuations, and three more for the odd ones; nothing left waiting.
        assert_eq!(addr.send(Count).await.unwrap(), (9, 0));
    }

    #[actix_rt::test]
    async fn an_asker_gone_while_its_answer_waits_is_no_harm() {
        let addr = Asked::default().start();
        let (open, gate) = tokio::sync::oneshot::channel();
        let ask = addr.send(Ask(2, gate));
        // Handled, and waiting.
        assert_eq!(addr.send(Count).await.unwrap(), (0, 1));
        drop(ask);
        open.send(()).unwrap();
        // The continuation still runs on the actor, and nothing is left waiting.
        for _ in 0..100 {
            if addr.send(Count).await.unwrap() == (1, 0) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the continuation did not run");
    }

    /// Hands the asker's channel to a spawned task, which answers `n + 1` after a gate opens,
    /// or drops the channel unanswered for `n == 0`.
    struct HandsOver;

    impl Actor for HandsOver {
        type Context = Context<Self>;
    }

    impl Handler<Ask> for HandsOver {
        type Result = Deferred<Self, u32>;

        fn handle(&mut self, msg: Ask, _ctx: &mut Context<Self>) -> Self::Result {
            let Ask(n, gate) = msg;
            Deferred::hand_over(move |to| {
                actix_rt::spawn(async move {
                    let _ = gate.await;
                    if let (Some(to), true) = (to, n > 0) {
                        let _ = to.send(n + 1);
                    }
                });
            })
        }
    }

    #[actix_rt::test]
    async fn a_handed_over_channel_is_answered_by_whoever_holds_it() {
        let addr = HandsOver.start();
        let (open, gate) = tokio::sync::oneshot::channel();
        let ask = addr.send(Ask(41, gate));
        open.send(()).unwrap();
        assert_eq!(ask.await.unwrap(), 42);
        // Dropped unanswered: the asker sees its request fail, as if the actor had stopped.
        let (open, gate) = tokio::sync::oneshot::channel();
        let ask = addr.send(Ask(0, gate));
        open.send(()).unwrap();
        assert!(matches!(ask.await, Err(MailboxError::Closed)));
    }
}

//! Wiring of the roles that decide: the seven domain services (queue
//! commands plus their sagas), the CRM and the mail service.

use std::sync::Arc;

use futures::future::join_all;
use ordershop_client::{
    Backoff, Clients, Delivery, Message, ServeOptions, StartPosition, SubscribeOptions,
};
use ordershop_core::commands::command_topics;
use ordershop_core::crm::CRM_TOPICS;
use ordershop_core::sagas::order_status::ORDER_STATUS_TOPICS;
use ordershop_core::sagas::shipping::SHIPPING_SAGA_TOPICS;
use ordershop_core::sagas::stock::STOCK_TOPICS;
use ordershop_core::{CommandOp, EntityKind, Topic};
use ordershop_topology::{Role, channel_name};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::Commands;
use crate::crm::Crm;
use crate::decide::Writer;
use crate::error::AppError;
use crate::live_view::LiveView;
use crate::mail::MailService;
use crate::sagas::order_status::OrderWorkflow;
use crate::sagas::shipping::ShippingSaga;
use crate::sagas::stock::StockSaga;
use crate::settings::Settings;

/// The entity kind a domain service owns.
pub(crate) fn domain_kind(role: Role) -> Option<EntityKind> {
    Topic::from_name(role.owned_topic()?)?.entity_kind()
}

/// Every topic the role's decisions read: its commands' and its sagas'.
pub(crate) fn view_topics(role: Role) -> Vec<Topic> {
    let mut topics: Vec<Topic> = domain_kind(role)
        .map(|kind| command_topics(kind).to_vec())
        .unwrap_or_default();
    topics.extend_from_slice(match role {
        Role::Inventory => STOCK_TOPICS,
        Role::Order => ORDER_STATUS_TOPICS,
        Role::Shipping => SHIPPING_SAGA_TOPICS,
        Role::Crm => CRM_TOPICS,
        _ => &[],
    });
    topics.sort();
    topics.dedup();
    topics
}

/// The topics whose heads a role's saga deliveries bring: its own view's,
/// and for the stock saga the order service's too, since it hands them on
/// with its verdict (`set_status`) and spares that handler a heads call.
fn delivery_heads(role: Role) -> Vec<Topic> {
    let mut topics = view_topics(role);
    if role == Role::Inventory {
        topics.extend(view_topics(Role::Order));
        topics.sort();
        topics.dedup();
    }
    topics
}

/// What serves one queue channel.
#[derive(Debug, Clone)]
enum ChannelHandler {
    Command(Arc<Commands>, CommandOp),
    SetStatus(Arc<OrderWorkflow>),
    Mail(Arc<MailService>),
}

impl ChannelHandler {
    async fn handle(
        &self,
        message: Message,
    ) -> Result<Option<String>, ordershop_client::HandlerError> {
        let started = std::time::Instant::now();
        let channel = message.channel.clone();
        let id = message.id.clone();
        let outcome = match self {
            ChannelHandler::Command(commands, op) => commands.handle(*op, &message).await,
            ChannelHandler::SetStatus(workflow) => workflow.set_status(&message).await,
            ChannelHandler::Mail(mail) => mail.send(&message).await,
        };
        tracing::debug!(%channel, %id, elapsed = ?started.elapsed(), ok = outcome.is_ok(), "message handled");
        outcome
    }
}

/// What handles a role's subscription.
#[derive(Debug, Clone)]
enum Saga {
    Stock(Arc<StockSaga>),
    OrderStatus(Arc<OrderWorkflow>),
    Shipping(Arc<ShippingSaga>),
    Crm(Arc<Crm>),
}

impl Saga {
    async fn handle(
        &self,
        role: Role,
        delivery: Delivery,
    ) -> Result<(), ordershop_client::HandlerError> {
        let started = std::time::Instant::now();
        let (topic, entry) = (
            delivery.event.topic.clone(),
            delivery.event.entry_id.clone(),
        );
        let count = delivery.count;
        let outcome = match self {
            Saga::Stock(saga) => saga.handle(delivery).await,
            Saga::OrderStatus(saga) => saga.handle(delivery).await,
            Saga::Shipping(saga) => saga.handle(delivery).await,
            Saga::Crm(crm) => crm.handle(delivery).await,
        };
        crate::metrics::event_handled(role.slug(), &topic, &entry, &outcome);
        tracing::debug!(%topic, %entry, delivery = count, elapsed = ?started.elapsed(), ok = outcome.is_ok(), "event handled");
        outcome
    }
}

/// Runs a domain service, the CRM or the mail service until `shutdown`.
pub(crate) async fn run(
    role: Role,
    clients: Clients,
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    // Stops every task of the role, on shutdown or when the view finds the
    // store behind it.
    let shutdown = shutdown.child_token();
    let topics = view_topics(role);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let view = if topics.is_empty() {
        None
    } else {
        let view = LiveView::new(
            clients.event_store.clone(),
            role.service_name(),
            &topics,
            settings.view.clone(),
        );
        match start_view(&view, &shutdown).await? {
            Some(follow) => tasks.extend(follow),
            None => return Ok(()),
        }
        tasks.extend(view.spawn_snapshots(&shutdown));
        Some(view)
    };
    settings.readiness.set(true);
    let store = clients.event_store.clone();
    let kind = domain_kind(role);
    let writer = view
        .as_ref()
        .map(|view| Writer::new(view.clone(), store.clone(), settings.max_conflicts));
    let workflow = match (&writer, role) {
        (Some(writer), Role::Order) => Some(Arc::new(OrderWorkflow::new(writer.clone()))),
        _ => None,
    };
    let commands = match (&writer, kind) {
        (Some(writer), Some(kind)) => Some(Arc::new(Commands::new(kind, writer.clone()))),
        _ => None,
    };
    for function in role.functions() {
        let handler = match (*function, CommandOp::parse_function(function)) {
            ("set_status", _) => workflow.clone().map(ChannelHandler::SetStatus),
            ("send", _) if role == Role::Mail => Some(ChannelHandler::Mail(Arc::new(
                MailService::new(store.clone()),
            ))),
            (_, Some((_, op))) => commands.clone().map(|c| ChannelHandler::Command(c, op)),
            _ => None,
        };
        let channel = channel_name(role.service_name(), function);
        let Some(handler) = handler else {
            // The topology and this table disagree: a bug to fix here.
            tracing::error!(%channel, "no handler for this channel; not serving it");
            continue;
        };
        let options = ServeOptions {
            concurrency: settings.concurrency_of(&channel),
            lease: settings.lease,
            wait: settings.receive_wait,
            ..ServeOptions::new(channel)
        };
        tasks.extend(
            clients
                .queue
                .serve(options, shutdown.clone(), move |message: Message| {
                    let handler = handler.clone();
                    async move { handler.handle(message).await }
                }),
        );
    }
    let saga = match (&view, &writer, role) {
        (_, Some(writer), Role::Inventory) => Some(Saga::Stock(Arc::new(StockSaga::new(
            writer.clone(),
            clients.queue.clone(),
        )))),
        (_, Some(_), Role::Order) => workflow.clone().map(Saga::OrderStatus),
        (_, Some(writer), Role::Shipping) => {
            Some(Saga::Shipping(Arc::new(ShippingSaga::new(writer.clone()))))
        }
        (Some(view), _, Role::Crm) => Some(Saga::Crm(Arc::new(Crm::new(
            view.clone(),
            clients.queue.clone(),
        )))),
        _ => None,
    };
    if let Some(saga) = saga {
        tasks.extend(subscribe(role, &clients, &settings, &shutdown, saga));
    }
    if let Some(view) = &view {
        let (behind, stop) = (view.behind_store().clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = behind.cancelled() => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        }));
    }
    tracing::info!(role = role.slug(), instance = %clients.instance, "serving");
    join_all(tasks).await;
    tracing::info!(role = role.slug(), "stopped");
    if view.is_some_and(|view| view.behind_store().is_cancelled()) {
        return Err(AppError::StoreBehindView);
    }
    Ok(())
}

/// Replays the view's topics, starts following them and catches up once.
/// `None` when `shutdown` fired first.
async fn start_view(
    view: &Arc<LiveView>,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<JoinHandle<()>>>, AppError> {
    let mut backoff = Backoff::default();
    loop {
        let loaded = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            loaded = view.load() => loaded,
        };
        match loaded {
            Ok(events) => {
                tracing::info!(topics = ?view.topics(), events, "view replayed");
                break;
            }
            Err(err) if err.is_transient() || err.code() == tonic::Code::DeadlineExceeded => {
                tracing::warn!(error = %err, "replaying the event store failed; retrying");
                if !backoff.pause(shutdown).await {
                    return Ok(None);
                }
            }
            Err(err) => return Err(AppError::EventStore(err)),
        }
    }
    let follow: Vec<JoinHandle<()>> = view.spawn_follow(shutdown).into_iter().collect();
    // The replay's pages may be older than what arrived meanwhile; one
    // catch-up makes the view current before the first decision.
    tokio::select! {
        _ = shutdown.cancelled() => {}
        caught_up = view.catch_up() => {
            if let Err(err) = caught_up {
                // Every decision catches up anyway; this one only warms up.
                tracing::warn!(error = %err, "first catch-up failed");
            }
        }
    }
    Ok(Some(follow))
}

/// `settings.saga_consumers` consumers of the role's subscription.
fn subscribe(
    role: Role,
    clients: &Clients,
    settings: &Settings,
    shutdown: &CancellationToken,
    saga: Saga,
) -> Vec<JoinHandle<()>> {
    let topics: Vec<String> = role
        .subscriptions()
        .iter()
        .map(|s| s.topic.to_string())
        .collect();
    (0..settings.saga_consumers.max(1))
        .map(|index| {
            // Stable names: after a restart each consumer first gets back
            // its own unacknowledged deliveries.
            let consumer = if index == 0 {
                clients.instance.clone()
            } else {
                format!("{}-{index}", clients.instance)
            };
            let options = SubscribeOptions {
                topics: topics.clone(),
                group: role.service_name().to_string(),
                consumer,
                start: StartPosition::Beginning,
                // The saga's decisions need its view as current as the
                // event: these heads spare a heads call per event.
                heads_of: delivery_heads(role)
                    .iter()
                    .map(|t| t.name().to_owned())
                    .collect(),
            };
            let saga = saga.clone();
            clients
                .event_store
                .subscribe(options, shutdown.clone(), move |delivery| {
                    let saga = saga.clone();
                    async move { saga.handle(role, delivery).await }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_cover_commands_and_sagas() {
        use Topic as T;
        assert_eq!(
            view_topics(Role::Inventory),
            vec![T::Product, T::Inventory, T::Cart, T::Order]
        );
        assert_eq!(
            view_topics(Role::Order),
            vec![T::Customer, T::Cart, T::Order, T::Billing, T::Shipping]
        );
        assert_eq!(
            view_topics(Role::Shipping),
            vec![T::Order, T::Billing, T::Shipping]
        );
        assert_eq!(
            view_topics(Role::Crm),
            vec![T::Customer, T::Product, T::Cart, T::Order]
        );
        assert!(view_topics(Role::Mail).is_empty());
        assert_eq!(domain_kind(Role::Mail), None);
        assert_eq!(domain_kind(Role::Billing), Some(EntityKind::Billing));
    }

    /// Retention trims a topic behind the snapshots of the roles the
    /// topology names as its viewers: a view it did not name could find
    /// its topic trimmed past its snapshot; one it named but that has no
    /// view would hold retention back forever.
    #[test]
    fn the_topology_names_every_view() {
        for role in Role::ALL {
            let mut named: Vec<&str> = role.view_topics().to_vec();
            named.sort();
            let mut folded: Vec<&str> = view_topics(role).iter().map(|t| t.name()).collect();
            folded.sort();
            assert_eq!(named, folded, "{role:?}");
        }
    }

    /// The event store lets a role read only `Role::reads` of the
    /// topology: a view needing more would fail at its first replay.
    #[test]
    fn the_topology_lets_every_view_read_its_topics() {
        for role in Role::ALL {
            for topic in view_topics(role) {
                assert!(
                    role.reads().contains(&topic.name()),
                    "{role:?} reads {} but the topology does not allow it",
                    topic.name()
                );
            }
        }
    }
}

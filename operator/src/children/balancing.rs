//! Headless Services of the event store and the message queue, so their
//! clients balance over every replica.
//!
//! A client keeps one HTTP/2 connection per address it knows; behind the
//! ClusterIP Service `<shop>-<role>`, kube-proxy picks a backend per
//! connection, so a client stays on the replica it first reached and
//! replicas added later get none of the existing clients' calls. The
//! client library resolves its host name every few seconds and balances
//! over all the addresses (`ordershop_client::Connector`); for that, the
//! name must resolve to the pods: a headless Service, `<shop>-<role>-pods`,
//! whose DNS answer is the ready pods' IPs. The ClusterIP Service stays,
//! for anything else that addresses the role (its clusterIP cannot be
//! switched to None in place).
//!
//! `desired` builds [`pods_service`] for every [`BALANCED`] role, whatever
//! the Redis mode, and the clients' `ORDERSHOP_EVENT_STORE_URL` /
//! `ORDERSHOP_QUEUE_URL` are [`pods_url`].
//!
//! Only ready pods are published (`publishNotReadyAddresses: false`). While
//! no replica of a role is ready its name resolves to nothing; the client
//! then connects by the name itself, fails as `Unavailable` and retries, and
//! takes the addresses at its first resolution that finds some (within 5 s
//! plus the DNS TTL). That cannot wedge a start: the event store and the
//! queue need only Redis to become ready, never another role's name.
//! Publishing not-ready pods would buy nothing at start-up (an unready event
//! store cannot serve anyway) and would send calls to replicas that cannot
//! answer them: ones whose Redis is unreachable, and terminating ones, which
//! would stay published for their whole grace period.

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use ordershop_topology::Role;

use super::Owner;
use crate::names::{GRPC_PORT, Names};

/// The roles whose clients balance over their pods: the two gRPC APIs.
pub(crate) const BALANCED: [Role; 2] = [Role::EventStore, Role::MessageQueue];

/// The URL the clients of `role` are given: its headless Service
/// (`<shop>-<role>-pods`, at most 40 + 14 + 5 characters: a valid DNS label).
pub(crate) fn pods_url(names: &Names, role: Role) -> String {
    format!("https://{}:{GRPC_PORT}", names.pods_service(role))
}

/// The headless Service of `role`'s pods.
pub(crate) fn pods_service(names: &Names, owner: &Owner, role: Role) -> Service {
    let slug = role.slug();
    Service {
        metadata: owner.meta(names.pods_service(role), names, slug),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Only ready pods: a replica gets calls once its readiness
            // probe passes (it reaches Redis), and none once it fails or
            // the pod terminates.
            publish_not_ready_addresses: Some(false),
            selector: Some(names.selector(slug)),
            ports: Some(vec![super::workloads::grpc_service_port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures;
    use crate::crd::OrderShopSpec;

    #[test]
    fn the_pods_service_is_headless_over_ready_pods_of_its_role() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let owner = Owner::of(&shop).unwrap();
        let names = Names::new("shop");
        let service = pods_service(&names, &owner, Role::EventStore);
        assert_eq!(
            service.metadata.name.as_deref(),
            Some("shop-event-store-pods")
        );
        assert_eq!(service.metadata.namespace.as_deref(), Some("ns"));
        assert!(service.metadata.owner_references.is_some());
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(false));
        assert_eq!(spec.selector, Some(names.selector("event-store")));
        assert_eq!(spec.ports.unwrap()[0].port, GRPC_PORT);
        assert_eq!(
            pods_url(&names, Role::MessageQueue),
            "https://shop-message-queue-pods:50051"
        );
    }

    #[test]
    fn the_longest_name_is_a_dns_label() {
        let names = Names::new("a".repeat(40));
        for role in BALANCED {
            assert!(names.pods_service(role).len() <= 63);
        }
    }
}

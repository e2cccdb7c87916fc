//! The NetworkPolicy that lets only this OrderShop's Redis clients (and the
//! operator, which measures backlogs) reach the managed Redis.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ordershop_topology::Role;

use super::Owner;
use crate::names::{
    LABEL_COMPONENT, LABEL_INSTANCE, LABEL_NAME, Names, REDIS_COMPONENT, REDIS_PORT, uses_redis,
};

/// `app.kubernetes.io/name` of the operator's own pods (chart and deploy/).
const OPERATOR_APP_NAME: &str = "ordershop-operator";

pub(super) fn redis_ingress(
    names: &Names,
    owner: &Owner,
    operator_namespace: Option<&str>,
) -> NetworkPolicy {
    let clients: Vec<String> = ordershop_topology::Role::ALL
        .into_iter()
        .filter(|r| uses_redis(*r))
        .map(|r: Role| r.slug().to_string())
        .collect();
    let mut from = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (LABEL_NAME.to_string(), crate::names::APP_NAME.to_string()),
                (LABEL_INSTANCE.to_string(), names.instance().to_string()),
            ])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_COMPONENT.into(),
                operator: "In".into(),
                values: Some(clients),
            }]),
        }),
        ..NetworkPolicyPeer::default()
    }];
    if let Some(namespace) = operator_namespace {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    namespace.to_string(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    LABEL_NAME.to_string(),
                    OPERATOR_APP_NAME.to_string(),
                )])),
                match_expressions: None,
            }),
            ip_block: None,
        });
    }
    NetworkPolicy {
        metadata: owner.meta(names.redis(), names, REDIS_COMPONENT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names.selector(REDIS_COMPONENT)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(REDIS_PORT)),
                    protocol: Some("TCP".into()),
                    end_port: None,
                }]),
            }]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures;
    use crate::crd::OrderShopSpec;

    #[test]
    fn only_redis_clients_of_this_instance_and_the_operator_may_connect() {
        let shop = fixtures::shop(OrderShopSpec::default());
        let owner = Owner::of(&shop).unwrap();
        let np = redis_ingress(&Names::new("shop"), &owner, Some("ops"));
        let rule = &np.spec.unwrap().ingress.unwrap()[0];
        let peers = rule.from.as_ref().unwrap();
        let pods = peers[0].pod_selector.as_ref().unwrap();
        assert_eq!(pods.match_labels.as_ref().unwrap()[LABEL_INSTANCE], "shop");
        let components = pods.match_expressions.as_ref().unwrap()[0]
            .values
            .clone()
            .unwrap();
        assert_eq!(components, ["event-store", "message-queue", "read-model"]);
        assert!(peers[0].namespace_selector.is_none(), "same namespace only");
        assert_eq!(
            peers[1]
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            "ops"
        );
    }
}
